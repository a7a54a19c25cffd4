"""MemoryEventStore: the EventStore port in memory, with the same dedup and ordering rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tollway.errors import UnavailableError
from tollway.metering.events import Event


class MemoryEventStore:
    def __init__(self) -> None:
        self._events: list[Event] = []
        self._keys: set[tuple[str, str]] = set()
        self.available = True

    def _check(self) -> None:
        if not self.available:
            raise UnavailableError("memory store set unavailable")

    async def insert_events(self, events: Sequence[Event]) -> int:
        self._check()
        inserted = 0
        for event in events:
            key = (event.source, event.id)
            if key in self._keys:
                continue
            self._keys.add(key)
            self._events.append(event)
            inserted += 1
        return inserted

    async def load_events(
        self,
        event_type: str,
        start: datetime | None,
        end: datetime | None,
        subjects: Sequence[str] | None,
    ) -> list[Event]:
        self._check()
        chosen = [
            e
            for e in self._events
            if e.type == event_type
            and (start is None or e.time >= start)
            and (end is None or e.time < end)
            and (subjects is None or e.subject in subjects)
        ]
        return sorted(chosen, key=lambda e: e.time)

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        return None

    @property
    def events(self) -> list[Event]:
        return list(self._events)
