"""MemoryEventStore: the EventStore and MeterStore ports in memory, with the same dedup and rollup rules.

Rollups are computed on demand from the raw events with the same pure functions the SQL adapter
stores, so the contract suite holds both to the same answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tollway.clock import Clock, SystemClock
from tollway.errors import ConflictError, UnavailableError
from tollway.metering.events import Event
from tollway.metering.meters import Meter
from tollway.metering.ports import IngestStats, Subject
from tollway.metering.rollup import DAY_US, PartialRow, UniqueRow, contribute


class MemoryEventStore:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._events: list[Event] = []
        self._keys: dict[tuple[str, str], Event] = {}
        self._meters: dict[str, Meter] = {}
        self._subjects: dict[str, datetime] = {}
        self._stats = IngestStats()
        self.available = True

    @property
    def stats(self) -> IngestStats:
        return self._stats

    def _check(self) -> None:
        if not self.available:
            raise UnavailableError("memory store set unavailable")

    async def insert_events(self, events: Sequence[Event]) -> int:
        self._check()
        inserted = 0
        for event in events:
            key = (event.source, event.id)
            kept = self._keys.get(key)
            if kept is not None:
                if (kept.type, kept.subject, kept.time, kept.data) != (
                    event.type,
                    event.subject,
                    event.time,
                    event.data,
                ):
                    self._stats.conflicts_total += 1
                else:
                    self._stats.duplicates_total += 1
                continue
            self._keys[key] = event
            self._events.append(event)
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

    def _contribution(self, slug: str, level_us: int, subjects: Sequence[str] | None) -> list[tuple[Event, int]]:
        meter = self._meters[slug]
        return [
            (e, seq)
            for seq, e in enumerate(self._events)
            if e.type == meter.event_type and (subjects is None or e.subject in subjects)
        ]

    async def rollup_span(self, slug: str) -> tuple[int, int] | None:
        self._check()
        if slug not in self._meters:
            return None
        buckets = [
            k[1] for k in contribute(self._meters[slug], self._contribution(slug, DAY_US, None), (DAY_US,)).partials
        ]
        return (min(buckets), max(buckets) + DAY_US) if buckets else None

    async def load_partials(
        self, slug: str, level_us: int, start_us: int | None, end_us: int | None, subjects: Sequence[str] | None
    ) -> list[PartialRow]:
        self._check()
        if slug not in self._meters:
            return []
        found = contribute(self._meters[slug], self._contribution(slug, level_us, subjects), (level_us,))
        return [
            PartialRow(bucket, subject, dims, partial)
            for (_, bucket, subject, dims), partial in found.partials.items()
            if (start_us is None or bucket >= start_us) and (end_us is None or bucket < end_us)
        ]

    async def load_uniques(
        self, slug: str, level_us: int, start_us: int | None, end_us: int | None, subjects: Sequence[str] | None
    ) -> list[UniqueRow]:
        self._check()
        if slug not in self._meters:
            return []
        found = contribute(self._meters[slug], self._contribution(slug, level_us, subjects), (level_us,))
        return [
            UniqueRow(bucket, subject, dims, digest)
            for (_, bucket, subject, dims, digest) in found.uniques
            if (start_us is None or bucket >= start_us) and (end_us is None or bucket < end_us)
        ]

    async def list_subjects(self) -> list[Subject]:
        self._check()
        return [Subject(key=k, first_seen=v) for k, v in sorted(self._subjects.items())]

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        return None

    @property
    def events(self) -> list[Event]:
        return list(self._events)
