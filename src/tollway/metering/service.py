"""Metering use cases: ingest events, manage meters, answer meter queries from rollups, list subjects."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from tollway.clock import Clock
from tollway.errors import ConflictError, NotFoundError, ValidationError
from tollway.metering.aggregation import AggregationStats, MeterQuery, QueryRow, aggregate
from tollway.metering.events import EARLIEST, LATEST, Event, from_micros, to_micros
from tollway.metering.ingest import EventValidationError, RangeChecks, parse_events
from tollway.metering.meters import BUILT_IN_METERS, Meter
from tollway.metering.ports import EventFilter, EventStore, ListedEvent, MeterStore, Subject
from tollway.metering.query import assemble, plan_query
from tollway.metering.rollup import DAY_US, MINUTE_US, PartialRow, UniqueRow, contribute

log = logging.getLogger("tollway.metering")
# Past this many events or rollup rows a query's rows are put together in a worker thread, so that a large
# query does not hold the event loop (other requests, /healthz) while it computes.
OFF_LOOP_ROWS = 20_000
# Ingest checks events against the meters (their value ranges) from a copy of the meter list at most this old:
# a meter changed through this service is seen at once, one changed by another process within this time.
METERS_FRESH_S = 1.0


class Store(EventStore, MeterStore, Protocol):
    """One adapter holds events, meters and rollups (they change in one transaction)."""


class CustomerResolver(Protocol):
    """The seam for the billing catalog: a customer key -> the subjects whose usage it pays for."""

    async def subjects_of(self, customer: str) -> list[str]: ...


class MeteringService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        customers: CustomerResolver | None = None,
        *,
        retention: timedelta | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._customers = customers
        self.retention = retention  # events older than this are refused (their duplicates may be gone)
        self._checks: tuple[float, RangeChecks] | None = None  # (read at, monotonic seconds; checks)
        self._meter_changes = 0  # meter changes made through this service (a read that overlaps one is not kept)

    @property
    def store(self) -> Store:
        return self._store

    def now(self) -> datetime:
        return self._clock.now()

    # -- events -------------------------------------------------------------------------------

    async def ingest(self, body: Any) -> tuple[int, int]:
        """Validate CloudEvents (one or a batch, all-or-nothing) and store them. Returns (received, new)."""
        now = self._clock.now()
        events = parse_events(body, now=now, not_before=now - self.retention if self.retention else None)
        errors = (await self._range_checks()).problems(events, batch=isinstance(body, list))
        if errors:
            raise EventValidationError(errors)
        inserted = await self._store.insert_events(events)
        return len(events), inserted

    async def _range_checks(self) -> RangeChecks:
        """The meters' range checks, from the meter list read at most METERS_FRESH_S ago (not once per request:
        reading and decoding the meters cost more than a small request's events)."""
        cached = self._checks
        if cached is not None and time.monotonic() - cached[0] < METERS_FRESH_S:
            return cached[1]
        read_at, changes = time.monotonic(), self._meter_changes
        checks = RangeChecks(await self._store.list_meters())
        if changes == self._meter_changes:
            self._checks = (read_at, checks)
        return checks

    def _meters_changed(self) -> None:
        self._meter_changes += 1
        self._checks = None

    async def list_events(self, where: EventFilter, customers: Sequence[str] = ()) -> list[ListedEvent]:
        """Stored events matching `where`, newest first; `customers` narrows them to the subjects those customers
        pay for (with `where.subjects`: the subjects in both)."""
        if customers:
            if self._customers is None:
                raise ValidationError("customerId: no billing catalog to resolve customers", field="customerId")
            paid: list[str] = []
            for customer in customers:
                paid.extend(await self._customers.subjects_of(customer))
            chosen = [s for s in paid if where.subjects is None or s in where.subjects]
            where = replace(where, subjects=tuple(dict.fromkeys(chosen)))
        return await self._store.list_events(where)

    async def insert(self, events: Sequence[Event]) -> int:
        return await self._store.insert_events(events)

    async def latest(self, event_type: str, limit: int, subjects: Sequence[str] | None = None) -> list[Event]:
        """The newest events of a type, at most `limit` (a bounded read, newest first)."""
        return await self._store.latest_events(event_type, limit, subjects)

    async def subjects(self, offset: int = 0, limit: int | None = None) -> list[Subject]:
        """Subjects in key order, a page of them (`offset`, `limit`) or all."""
        return await self._store.list_subjects(offset, limit)

    async def count_subjects(self) -> int:
        return await self._store.count_subjects()

    async def subject(self, key: str) -> Subject:
        found = await self._store.get_subject(key)
        if found is None:
            raise NotFoundError(f"subject {key!r} not found")
        return found

    # -- meters -------------------------------------------------------------------------------

    async def sync_meters(self, configured: Sequence[Meter]) -> None:
        """Built-in meters plus those of the config file; api-created meters are left alone."""
        built_in = {m.slug for m in BUILT_IN_METERS}
        for meter in configured:
            if meter.slug in built_in:
                raise ValidationError(f"meter {meter.slug!r} is built in and cannot be redefined", field="slug")
        try:
            await self._store.sync_meters([*BUILT_IN_METERS, *configured])
        finally:
            self._meters_changed()

    async def meters(self) -> list[Meter]:
        return await self._store.list_meters()

    async def meter(self, slug: str) -> Meter:
        for meter in await self._store.list_meters():
            if meter.slug == slug:
                return meter
        raise NotFoundError(f"meter {slug!r} not found")

    async def create_meter(self, meter: Meter) -> Meter:
        if meter.managed_by != "api":
            meter = Meter.from_record({**meter.to_record(), "managedBy": "api"})
        try:
            await self._store.create_meter(meter)
        finally:
            self._meters_changed()
        return await self.meter(meter.slug)

    async def delete_meter(self, slug: str) -> None:
        meter = await self.meter(slug)
        if meter.managed_by != "api":
            where = "built in" if meter.built_in else "defined in the config file"
            raise ConflictError(f"meter {slug!r} is {where} and cannot be deleted", field="slug")
        try:
            await self._store.delete_meter(slug)
        finally:
            self._meters_changed()

    # -- queries ------------------------------------------------------------------------------

    async def query_page(
        self, slug: str, query: MeterQuery, *, offset: int, limit: int, customer: str | None = None
    ) -> tuple[list[QueryRow], int]:
        """The rows of one page of subjects (in key order: `offset`, at most `limit` of them) and how many
        subjects there are: those the query names (or the customer's), else every subject Tollway has seen.
        Only that page's subjects are read."""
        await self._checked(slug, query)
        if customer is not None:
            query = await self._narrow_to_customer(query, customer)
        if query.subjects is not None:
            named = sorted(set(query.subjects))
            total, keys = len(named), named[offset : offset + limit]
        else:
            total, found = await asyncio.gather(self.count_subjects(), self.subjects(offset, limit))
            keys = [subject.key for subject in found]
        if not keys:
            return [], total
        return await self.query(slug, replace(query, subjects=tuple(keys))), total

    async def _checked(self, slug: str, query: MeterQuery) -> Meter:
        meter = await self.meter(slug)
        if query.start is not None and query.end is not None and query.start >= query.end:
            raise ValidationError("'from' must be before 'to'", field="from")
        for name in (*query.group_by, *query.filter_group_by):
            if name != "subject" and name not in meter.group_by:
                known = ", ".join(["subject", *meter.group_by])
                raise ValidationError(f"meter {slug!r} has no groupBy {name!r} (known: {known})", field="groupBy")
        return meter

    async def check_subject_count(
        self, slug: str, query: MeterQuery, *, most: int, customer: str | None = None
    ) -> None:
        """Refuse a query grouped by subject over more than `most` subjects (those it names, the customer's, or
        every subject seen): such a query is to be asked page by page (`query_page`)."""
        if "subject" not in query.group_by:
            return
        await self._checked(slug, query)
        if customer is not None:
            query = await self._narrow_to_customer(query, customer)
        count = len(set(query.subjects)) if query.subjects is not None else await self.count_subjects()
        if count > most:
            raise ValidationError(
                f"grouped by subject this query covers {count} subjects, more than {most} in one answer: ask "
                "for it page by page with page and pageSize (subjects in key order)",
                field="pageSize",
            )

    async def query(self, slug: str, query: MeterQuery, customer: str | None = None) -> list[QueryRow]:
        meter = await self._checked(slug, query)
        if customer is not None:
            query = await self._narrow_to_customer(query, customer)
        now = self._clock.now()
        span = await self._store.event_span(meter.event_type)
        query, span = _within_window(query, span, now)
        plan = plan_query(query, span)
        if plan.level_us is None:
            events = await self._store.load_events(meter.event_type, query.start, query.end, query.subjects)
            if len(events) > OFF_LOOP_ROWS:
                return await asyncio.to_thread(aggregate, meter, query, events, now=now, stats=AggregationStats())
            return aggregate(meter, query, events, now=now, stats=AggregationStats())
        # The rollups and the sub-minute edges are independent reads: concurrently.
        snapshot, fragments = await asyncio.gather(
            self._store.load_rollup_segments(
                slug,
                [(segment.level_us, segment.start_us, segment.end_us) for segment in plan.segments],
                query.subjects,
                aggregation=meter.aggregation,
            ),
            asyncio.gather(
                *(
                    self._store.load_events(meter.event_type, start, end, query.subjects)
                    for start, end in plan.raw_ranges
                )
            ),
        )
        partials: list[PartialRow] = list(snapshot.partials)
        uniques: list[UniqueRow] = list(snapshot.uniques)
        # Events not yet rolled up, inside the rollup range, read raw (the worker keeps this tail short).
        tail = await self._store.load_events_after(
            meter.event_type,
            snapshot.rolled_seq,
            from_micros(plan.start_us) if plan.start_us is not None else None,
            from_micros(plan.end_us) if plan.end_us is not None else None,
            query.subjects,
        )
        edges = list(tail)
        for fragment in fragments:
            edges.extend((e, -1) for e in fragment)  # disjoint in time from the rest: seq only breaks ties inside
        if edges:
            extra = contribute(meter, edges, (MINUTE_US,))
            partials.extend(PartialRow(k[1], k[2], k[3], p) for k, p in extra.partials.items())
            uniques.extend(UniqueRow(u[1], u[2], u[3], u[4]) for u in extra.uniques)
        if len(partials) + len(uniques) > OFF_LOOP_ROWS:  # e.g. grouped by a million subjects: seconds of CPU
            return await asyncio.to_thread(assemble, meter, query, partials, uniques, now=now)
        return assemble(meter, query, partials, uniques, now=now)

    async def _narrow_to_customer(self, query: MeterQuery, customer: str) -> MeterQuery:
        if self._customers is None:
            raise ValidationError("customers are not available yet; filter by subject instead", field="customer")
        subjects = await self._customers.subjects_of(customer)
        if query.subjects is not None:
            subjects = [s for s in subjects if s in query.subjects]
        return MeterQuery(
            start=query.start,
            end=query.end,
            window_size=query.window_size,
            window_tz=query.window_tz,
            subjects=tuple(subjects),
            group_by=query.group_by,
            filter_group_by=query.filter_group_by,
        )


def _within_window(
    query: MeterQuery, span: tuple[int, int] | None, now: datetime
) -> tuple[MeterQuery, tuple[int, int] | None]:
    """The query and the stored span cut to the event-time window when events outside it are stored (accepted
    before the window was enforced): date arithmetic in a window's zone near year 1 or 9999 would overflow, and
    no such event counts. The window's end for stored data is the day after tomorrow (no event is accepted more
    than 5 minutes ahead), so an open-ended query does not enumerate windows up to 2200."""
    today = to_micros(now) - to_micros(now) % DAY_US
    floor, ceiling = to_micros(EARLIEST), min(to_micros(LATEST), today + 2 * DAY_US)
    if span is None or (span[0] >= floor and span[1] <= ceiling):
        return query, span
    start = query.start if query.start is not None and query.start >= EARLIEST else EARLIEST
    end = query.end
    if span[1] > ceiling and (end is None or end > from_micros(ceiling)):
        end = from_micros(ceiling)
    return replace(query, start=start, end=end), (max(span[0], floor), min(span[1], ceiling))
