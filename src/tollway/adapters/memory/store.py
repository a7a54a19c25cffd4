"""MemoryEventStore: the EventStore and MeterStore ports in memory, with the same dedup and rollup rules.

Rollups are computed on demand from the raw events before the watermark with the same pure
functions the SQL adapter stores, so the contract suite holds both to the same answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tollway.clock import Clock, SystemClock
from tollway.errors import ConflictError, UnavailableError
from tollway.metering.events import Event, to_micros
from tollway.metering.llm import LlmCall
from tollway.metering.meters import Aggregation, Meter
from tollway.metering.ports import EventFilter, IngestStats, ListedEvent, RollupSnapshot, Subject
from tollway.metering.records import expand
from tollway.metering.rollup import DAY_US, PartialRow, UniqueRow, contribute


class MemoryEventStore:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._events: list[Event] = []
        self._ingested: list[datetime] = []  # when each of _events was stored
        self._keys: dict[tuple[str, str], Event] = {}
        self._meters: dict[str, Meter] = {}
        self._subjects: dict[str, datetime] = {}
        self._stats = IngestStats()
        self._rolled = 0
        self.available = True

    @property
    def stats(self) -> IngestStats:
        return self._stats

    def _check(self) -> None:
        if not self.available:
            raise UnavailableError("memory store set unavailable")

    async def insert_usage(self, items: Sequence[Event | LlmCall]) -> int:
        return await self.insert_events(expand(items))

    async def insert_events(self, events: Sequence[Event]) -> int:
        self._check()
        inserted = 0
        for event in events:
            key = (event.source, event.id)
            kept = self._keys.get(key)
            if kept is not None:
                if (kept.type, kept.subject, kept.data) != (event.type, event.subject, event.data) or (
                    kept.time != event.time and not event.time_defaulted  # a retry without a time: same event
                ):
                    self._stats.conflicts_total += 1
                else:
                    self._stats.duplicates_total += 1
                continue
            self._keys[key] = event
            self._events.append(event)
            self._ingested.append(self._clock.now())
            self._subjects.setdefault(event.subject, self._clock.now())
            for meter in self._meters.values():
                if meter.event_type == event.type:
                    self._stats.skipped_values_total += contribute(meter, [(event, 0)], ()).skipped
            inserted += 1
        self._stats.inserted_total += inserted
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

    async def latest_events(self, event_type: str, limit: int, subjects: Sequence[str] | None = None) -> list[Event]:
        self._check()
        chosen = [e for e in self._events if e.type == event_type and (subjects is None or e.subject in subjects)]
        return sorted(chosen, key=lambda e: e.time, reverse=True)[:limit]

    async def list_events(self, where: EventFilter) -> list[ListedEvent]:
        self._check()
        chosen = [
            (seq, ListedEvent(e, at))
            for seq, (e, at) in enumerate(zip(self._events, self._ingested, strict=True))
            if (where.start is None or e.time >= where.start)
            and (where.end is None or e.time < where.end)
            and (where.ingested_from is None or at >= where.ingested_from)
            and (where.ingested_to is None or at <= where.ingested_to)
            and (where.event_id is None or e.id == where.event_id)
            and (where.subjects is None or e.subject in where.subjects)
        ]
        chosen.sort(key=lambda row: (row[1].event.time, row[0]), reverse=True)
        return [listed for _, listed in chosen[: where.limit]]

    async def list_meters(self) -> list[Meter]:
        self._check()
        return [self._meters[slug] for slug in sorted(self._meters)]

    async def create_meter(self, meter: Meter) -> None:
        self._check()
        if meter.slug in self._meters:
            raise ConflictError(f"meter {meter.slug!r} already exists", field="slug")
        self._meters[meter.slug] = meter

    async def delete_meter(self, slug: str) -> bool:
        self._check()
        return self._meters.pop(slug, None) is not None

    async def sync_meters(self, meters: Sequence[Meter]) -> None:
        self._check()
        names = {m.slug for m in meters}
        for slug in [s for s, m in self._meters.items() if m.managed_by != "api" and s not in names]:
            del self._meters[slug]
        for meter in meters:
            self._meters[meter.slug] = meter

    async def roll_up(self, limit: int = 50_000) -> int:
        """Move the watermark (shared by every meter here): events before it are answered as rollups."""
        self._check()
        moved = min(limit, len(self._events) - self._rolled)
        self._rolled += moved
        return moved

    async def event_span(self, event_type: str) -> tuple[int, int] | None:
        self._check()
        times = [to_micros(e.time) for e in self._events if e.type == event_type]
        if not times:
            return None
        return min(times) - min(times) % DAY_US, max(times) - max(times) % DAY_US + DAY_US

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
        self._check()
        meter = self._meters.get(slug)
        if meter is None:
            return RollupSnapshot([], [], self._rolled)
        chosen = [
            (e, seq)
            for seq, e in enumerate(self._events[: self._rolled], start=1)
            if subjects is None or e.subject in subjects
        ]
        found = contribute(meter, chosen, (level_us,))

        def inside(bucket: int) -> bool:
            return (start_us is None or bucket >= start_us) and (end_us is None or bucket < end_us)

        return RollupSnapshot(
            [PartialRow(k[1], k[2], k[3], p) for k, p in found.partials.items() if inside(k[1])],
            [UniqueRow(u[1], u[2], u[3], u[4]) for u in found.uniques if inside(u[1])]
            if aggregation is Aggregation.UNIQUE_COUNT
            else [],
            self._rolled,
        )

    async def load_rollup_segments(
        self,
        slug: str,
        segments: Sequence[tuple[int, int | None, int | None]],
        subjects: Sequence[str] | None,
        *,
        aggregation: Aggregation,
    ) -> RollupSnapshot:
        partials: list[PartialRow] = []
        uniques: list[UniqueRow] = []
        for level_us, start_us, end_us in segments:  # no await suspends in between: one watermark
            part = await self.load_rollups(slug, level_us, start_us, end_us, subjects, aggregation=aggregation)
            partials.extend(part.partials)
            uniques.extend(part.uniques)
        return RollupSnapshot(partials, uniques, self._rolled)

    async def load_events_after(
        self,
        event_type: str,
        after_seq: int,
        start: datetime | None,
        end: datetime | None,
        subjects: Sequence[str] | None,
    ) -> list[tuple[Event, int]]:
        self._check()
        return [
            (e, seq)
            for seq, e in enumerate(self._events, start=1)
            if seq > after_seq
            and e.type == event_type
            and (start is None or e.time >= start)
            and (end is None or e.time < end)
            and (subjects is None or e.subject in subjects)
        ]

    async def list_subjects(self, offset: int = 0, limit: int | None = None) -> list[Subject]:
        self._check()
        ordered = sorted(self._subjects.items())
        chosen = ordered[offset:] if limit is None else ordered[offset : offset + limit]
        return [Subject(key=k, first_seen=v) for k, v in chosen]

    async def count_subjects(self) -> int:
        self._check()
        return len(self._subjects)

    async def get_subject(self, key: str) -> Subject | None:
        self._check()
        first_seen = self._subjects.get(key)
        return Subject(key=key, first_seen=first_seen) if first_seen is not None else None

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        return None

    @property
    def events(self) -> list[Event]:
        return list(self._events)
