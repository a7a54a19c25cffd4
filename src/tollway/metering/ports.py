"""The storage ports metering depends on. Adapters live in tollway.adapters (sql, memory, journal)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from tollway.metering.events import Event


class EventStore(Protocol):
    async def insert_events(self, events: Sequence[Event]) -> int:
        """Store events; an event whose (source, id) is already stored is skipped. Returns how many were new."""
        ...

    async def load_events(
        self,
        event_type: str,
        start: datetime | None,
        end: datetime | None,
        subjects: Sequence[str] | None,
    ) -> list[Event]:
        """Events of one type with start <= time < end, oldest first (ties in ingestion order)."""
        ...

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...

    async def close(self) -> None: ...


class Journal(Protocol):
    """An append-only local log that survives the process (not the disk) until its events are stored."""

    def recover(self) -> list[bytes]:
        """Records left by a process that died, adopted by this one (released by the next `release`)."""
        ...

    def append(self, data: bytes) -> None:
        """Append whole records (newline-terminated). Durable against a kill once this returns."""
        ...

    def seal(self) -> int:
        """Close the current segment to new appends; return a mark covering everything appended so far."""
        ...

    def release(self, mark: int) -> None:
        """Everything up to `mark` is stored: delete it."""
        ...

    def close(self) -> None: ...
