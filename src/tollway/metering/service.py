"""Metering use cases: list meters and answer meter queries."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from tollway.clock import Clock
from tollway.errors import NotFoundError, ValidationError
from tollway.metering.aggregation import AggregationStats, MeterQuery, QueryRow, aggregate
from tollway.metering.meters import Meter
from tollway.metering.ports import EventStore

log = logging.getLogger("tollway.metering")


class MeteringService:
    def __init__(self, store: EventStore, meters: Iterable[Meter], clock: Clock) -> None:
        self._store = store
        self._meters = {meter.slug: meter for meter in meters}
        self._clock = clock
        self.skipped_values_total = 0

    def meters(self) -> list[Meter]:
        return sorted(self._meters.values(), key=lambda m: m.slug)

    def meter(self, slug: str) -> Meter:
        meter = self._meters.get(slug)
        if meter is None:
            raise NotFoundError(f"meter {slug!r} not found")
        return meter

    async def query(self, slug: str, query: MeterQuery) -> list[QueryRow]:
        meter = self.meter(slug)
        if query.start is not None and query.end is not None and query.start >= query.end:
            raise ValidationError("'from' must be before 'to'", field="from")
        for name in (*query.group_by, *query.filter_group_by):
            if name != "subject" and name not in meter.group_by:
                known = ", ".join(["subject", *meter.group_by]) or "none"
                raise ValidationError(f"meter {slug!r} has no groupBy {name!r} (known: {known})", field="groupBy")
        events = await self._store.load_events(meter.event_type, query.start, query.end, query.subjects)
        stats = AggregationStats()
        rows = aggregate(meter, query, events, now=self._clock.now(), stats=stats)
        if stats.skipped_values:
            self.skipped_values_total += stats.skipped_values
            log.info("meter %s: %d events without a usable value", slug, stats.skipped_values)
        return rows
