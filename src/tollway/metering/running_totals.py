"""Running totals: a feature's usage so far in a period, read as a kept snapshot plus the events after it.

An entitlement check asks the same question over and over: how much of an additive meter (SUM, COUNT)
did these subjects use, filtered to a slice, from the period's start until now. Answering it with a
meter query merges the month's rollup buckets every time. Here the answer up to a whole minute `upto`
is kept in memory as a snapshot taken from the rollups, together with the rollup watermark `rolled_seq`
it reflects; a read adds only events the snapshot cannot hold:

    usage(start, at) = snapshot over rollup buckets [ceil_minute(start), upto), events seq <= rolled_seq
                     + raw events seq > rolled_seq in [ceil_minute(start), upto)   (folded after the snapshot)
                     + raw events in [start, ceil_minute(start))                    (a start within a minute)
                     + raw events in [upto, at)                                     (since the snapshot)

which is the meter query's own rule (rollups up to their watermark, raw events past it), so the total is
exact. The raw reads are index ranges over the subjects' latest events; the snapshot is taken again by
the first read after it is `refresh_after` old, so the tail stays short. A read for a moment before the
snapshot's `upto`, or a meter that is not additive, is answered by the caller's full query instead.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from tollway.clock import Clock
from tollway.metering.aggregation import MeterQuery, aggregate
from tollway.metering.events import Event, from_micros, to_micros
from tollway.metering.meters import Aggregation, Meter
from tollway.metering.ports import EventStore, MeterStore
from tollway.metering.query import assemble, plan_query
from tollway.metering.rollup import MINUTE_US

ADDITIVE = frozenset({Aggregation.SUM, Aggregation.COUNT})

Filters = Mapping[str, tuple[str, ...]]
SnapshotKey = tuple[str, tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...], int]


class RunningTotalStore(EventStore, MeterStore, Protocol):
    """What running totals read: rollup segments with their watermark, and raw events."""


@dataclass(frozen=True)
class Snapshot:
    meter: Meter  # the definition it was taken for: a changed meter makes it stale
    upto_us: int  # rollup buckets in [ceil_minute(start), upto_us)
    rolled_seq: int  # the watermark those buckets reflect
    value: Decimal
    taken_at: datetime


def _floor_minute(micros: int) -> int:
    return micros - micros % MINUTE_US


def _ceil_minute(micros: int) -> int:
    return -((-micros) // MINUTE_US) * MINUTE_US


class RunningTotals:
    def __init__(
        self,
        store: RunningTotalStore,
        clock: Clock,
        *,
        refresh_after: timedelta = timedelta(seconds=30),
        max_snapshots: int = 100_000,
    ) -> None:
        self._store = store
        self._clock = clock
        self._refresh_after = refresh_after
        self._max = max_snapshots
        self._snapshots: OrderedDict[SnapshotKey, Snapshot] = OrderedDict()

    async def total(
        self, meter: Meter, subjects: Sequence[str], filters: Filters, start: datetime, at: datetime
    ) -> Decimal | None:
        """The meter's total for `subjects` and `filters` over [start, at); None when it must be queried in
        full (a meter that is not additive, or a moment before what the kept snapshot covers)."""
        if meter.aggregation not in ADDITIVE:
            return None
        if not subjects or start >= at:
            return Decimal(0)
        key: SnapshotKey = (
            meter.slug,
            tuple(sorted(subjects)),
            tuple(sorted((name, tuple(sorted(values))) for name, values in filters.items())),
            to_micros(start),
        )
        at_us = to_micros(at)
        snapshot = self._snapshots.get(key)
        if snapshot is not None and snapshot.meter == meter and at_us < snapshot.upto_us:
            return None  # a moment the snapshot has already passed: the full query answers it
        if snapshot is None or snapshot.meter != meter or self._clock.now() - snapshot.taken_at >= self._refresh_after:
            snapshot = await self._take(key, meter, at_us)
        self._snapshots.move_to_end(key)
        return snapshot.value + await self._since(snapshot, key, start, at)

    # -- snapshots ------------------------------------------------------------------------------

    async def _take(self, key: SnapshotKey, meter: Meter, at_us: int) -> Snapshot:
        subjects, filters = key[1], dict(key[2])
        low = _ceil_minute(key[3])
        upto = max(low, _floor_minute(at_us))
        value = Decimal(0)
        rolled_seq = 0  # nothing read from rollups: every event of the window is read raw
        if low < upto:
            span = await self._store.event_span(meter.event_type)
            plan = plan_query(MeterQuery(start=from_micros(low), end=from_micros(upto)), span)
            assert plan.level_us is not None  # whole minutes and no windows: always from rollups
            read = await self._store.load_rollup_segments(
                meter.slug,
                [(segment.level_us, segment.start_us, segment.end_us) for segment in plan.segments],
                subjects,
                aggregation=meter.aggregation,
            )
            rolled_seq = read.rolled_seq
            query = MeterQuery(
                start=from_micros(low), end=from_micros(upto), subjects=subjects, filter_group_by=filters
            )
            rows = assemble(meter, query, read.partials, read.uniques, now=self._clock.now())
            value = sum((row.value for row in rows), Decimal(0))
        snapshot = Snapshot(meter, upto, rolled_seq, value, self._clock.now())
        self._snapshots[key] = snapshot
        while len(self._snapshots) > self._max:
            self._snapshots.popitem(last=False)
        return snapshot

    # -- the events a snapshot does not hold ----------------------------------------------------

    async def _since(self, snapshot: Snapshot, key: SnapshotKey, start: datetime, at: datetime) -> Decimal:
        meter, subjects = snapshot.meter, key[1]
        low = _ceil_minute(key[3])
        events: list[Event] = []
        if low < snapshot.upto_us:
            late = await self._store.load_events_after(
                meter.event_type, snapshot.rolled_seq, from_micros(low), from_micros(snapshot.upto_us), subjects
            )
            events.extend(event for event, _ in late)
        head_end = min(from_micros(low), at)
        if start < head_end:
            events.extend(await self._store.load_events(meter.event_type, start, head_end, subjects))
        tail_start = from_micros(max(snapshot.upto_us, low))
        if tail_start < at:
            events.extend(await self._store.load_events(meter.event_type, tail_start, at, subjects))
        if not events:
            return Decimal(0)
        query = MeterQuery(start=start, end=at, subjects=subjects, filter_group_by=dict(key[2]))
        rows = aggregate(meter, query, events, now=self._clock.now())
        return sum((row.value for row in rows), Decimal(0))
