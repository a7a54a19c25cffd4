"""The storage ports metering depends on. Adapters live in tollway.adapters (sql, memory, journal)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tollway.metering.events import Event
from tollway.metering.llm import LlmCall
from tollway.metering.meters import Aggregation, Meter
from tollway.metering.rollup import PartialRow, UniqueRow


@dataclass
class IngestStats:
    """Counters an event store keeps since start (exported as metrics)."""

    inserted_total: int = 0
    duplicates_total: int = 0  # same (source, id) and the same content: harmless retries and replays
    conflicts_total: int = 0  # same (source, id), different content: the first stored copy wins
    skipped_values_total: int = 0  # events a meter could not use (missing / non-numeric value)


@dataclass(frozen=True)
class RollupSnapshot:
    partials: list[PartialRow]
    uniques: list[UniqueRow]
    rolled_seq: int  # the meter's watermark these buckets reflect: later events must be read raw


@dataclass(frozen=True)
class Subject:
    key: str
    first_seen: datetime


@dataclass(frozen=True)
class EventFilter:
    """Which stored events to list (OpenMeter's event listing): every condition given must hold."""

    start: datetime | None = None  # event time, inclusive
    end: datetime | None = None  # event time, exclusive
    ingested_from: datetime | None = None  # inclusive
    ingested_to: datetime | None = None  # inclusive
    event_id: str | None = None
    subjects: tuple[str, ...] | None = None
    limit: int = 100


@dataclass(frozen=True)
class ListedEvent:
    event: Event
    ingested_at: datetime


class EventStore(Protocol):
    async def insert_events(self, events: Sequence[Event]) -> int:
        """Store events; an event whose (source, id) is already stored is skipped. Returns how many were new."""
        ...

    async def insert_usage(self, items: Sequence[Event | LlmCall]) -> int:
        """`insert_events` for events and gateway calls, each call as the events `llm_call_events` makes of it
        (a store may keep it in another form: readers see those events). Returns how many events were new."""
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

    async def list_events(self, where: EventFilter) -> list[ListedEvent]:
        """Stored events of any type matching `where`, newest first (by event time, then ingestion), at most
        `where.limit` of them."""
        ...

    @property
    def stats(self) -> IngestStats: ...

    async def latest_events(self, event_type: str, limit: int, subjects: Sequence[str] | None = None) -> list[Event]:
        """The newest `limit` events of a type (by event time, newest first): a bounded read for live views."""
        ...

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...

    async def close(self) -> None: ...


class MeterStore(Protocol):
    """Meter definitions and their rollups. Rollups change in the same transaction as the events they count."""

    async def list_meters(self) -> list[Meter]: ...

    async def create_meter(self, meter: Meter) -> None:
        """Store a new meter and build its rollups from the stored events. ConflictError if the slug is taken."""
        ...

    async def delete_meter(self, slug: str) -> bool:
        """Remove a meter and its rollups. False if there was none."""
        ...

    async def sync_meters(self, meters: Sequence[Meter]) -> None:
        """Make the stored builtin and config meters exactly `meters`: add, rebuild changed ones, drop the rest."""
        ...

    async def roll_up(self, limit: int = 50_000) -> int:
        """Fold up to `limit` stored events into the rollups of meters behind them. Returns events read."""
        ...

    async def event_span(self, event_type: str) -> tuple[int, int] | None:
        """[first day, last day end) holding events of the type (UTC micros, whole days), None when none."""
        ...

    async def load_rollups(
        self,
        slug: str,
        level_us: int,
        start_us: int | None,
        end_us: int | None,
        subjects: Sequence[str] | None,
        *,
        aggregation: Aggregation,
    ) -> RollupSnapshot:
        """Buckets of one level in [start_us, end_us), read consistently with the meter's watermark.

        Only the partials' fields `aggregation` needs must be filled (count, sum and first time always;
        extremes for MIN/MAX, the latest value for LATEST; distinct values for UNIQUE_COUNT)."""
        ...

    async def load_rollup_segments(
        self,
        slug: str,
        segments: Sequence[tuple[int, int | None, int | None]],
        subjects: Sequence[str] | None,
        *,
        aggregation: Aggregation,
    ) -> RollupSnapshot:
        """Buckets of several (level, start_us, end_us) ranges in one read, consistent with one watermark."""
        ...

    async def load_events_after(
        self,
        event_type: str,
        after_seq: int,
        start: datetime | None,
        end: datetime | None,
        subjects: Sequence[str] | None,
    ) -> list[tuple[Event, int]]:
        """Events past a watermark (not yet in rollups) with start <= time < end, with their sequence."""
        ...

    async def list_subjects(self, offset: int = 0, limit: int | None = None) -> list[Subject]:
        """Subjects in key order, from `offset`, at most `limit` of them (None: all)."""
        ...

    async def count_subjects(self) -> int: ...

    async def get_subject(self, key: str) -> Subject | None: ...


@dataclass(frozen=True)
class Recovered:
    """One journal segment left by a process that died. `final`: it was that writer's last segment."""

    records: list[bytes]
    final: bool = True


@dataclass(frozen=True)
class Sealed:
    """A sealed segment: `release(mark)` drops it; `read()` its records; `final` as in Recovered."""

    mark: int
    read: Callable[[], list[bytes]]
    final: bool = False


class Journal(Protocol):
    """An append-only local log that survives the process (not the disk) until its events are stored."""

    def recover(self) -> list[Recovered]:
        """Segments left by a process that died, adopted by this one (released by the next `release`)."""
        ...

    def append(self, data: bytes) -> None:
        """Append whole records (newline-terminated), all or none of them. Durable against a kill once this
        returns. Raises OSError when they cannot be written (a full disk): nothing of them is kept then."""
        ...

    def seal(self, carry: bytes = b"") -> int:
        """Close the current segment to new appends; return a mark covering everything appended so far.

        `carry`: records copied into the next segment (the intents of calls in flight), so that releasing
        the sealed one keeps them. Raises OSError (and seals nothing) when they cannot be written."""
        ...

    def sealed(self) -> list[Sealed]:
        """This process's sealed segments not yet released (adopted ones first), each read only when asked:
        what the pipeline stores from the journal after it spilled its in-memory backlog."""
        ...

    def release(self, mark: int) -> None:
        """Everything up to `mark` is stored: delete it."""
        ...

    def probe(self) -> None:
        """Raise OSError unless a record could be appended now (the disk is writable and has room)."""
        ...

    def close(self) -> None: ...
