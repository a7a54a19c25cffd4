"""Running totals (the entitlement's usage so far) stay exact as events arrive late, after the snapshot,
within the start's minute and after the rollup worker moves on — on memory, SQLite and PostgreSQL.

The expected totals are worked out by hand from the events listed in each step."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.databases import BACKENDS, database_url, migrated_engine
from tests.support.meter_events import token_event
from tollway.adapters.memory.store import MemoryEventStore
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.metering.aggregation import MeterQuery
from tollway.metering.meters import Aggregation, Meter
from tollway.metering.running_totals import RunningTotals, RunningTotalStore
from tollway.metering.service import MeteringService

NOW = datetime(2026, 10, 20, 15, 30, 27, tzinfo=UTC)
START = datetime(2026, 10, 1, 0, 0, 30, tzinfo=UTC)  # a subscription started within a minute
SUBJECTS = ("acme-a", "acme-b")
OUTPUT = {"type": ("output",)}
TOKENS = Meter(
    slug="tokens",
    event_type="llm.tokens",
    aggregation=Aggregation.SUM,
    value_property="$.tokens",
    group_by={"type": "$.type"},
)


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningTotalStore]:
    clock = FrozenClock(NOW)
    if request.param == "memory":
        memory = MemoryEventStore(clock)
        await memory.sync_meters([TOKENS])
        yield memory
        return
    url = database_url(request, tmp_path, "totals.db")
    engine = await migrated_engine(url)
    sql = SqlEventStore(engine, clock)
    await sql.sync_meters([TOKENS])
    yield sql
    await sql.close()


async def roll_up_all(store: RunningTotalStore) -> None:
    while await store.roll_up():
        pass


async def full_query(store: RunningTotalStore, at: datetime) -> Decimal:
    """The same figure through the meter query (a second opinion next to the hand-worked numbers)."""
    rows = await MeteringService(store, FrozenClock(NOW)).query(
        "tokens", MeterQuery(start=START, end=at, subjects=SUBJECTS, filter_group_by=OUTPUT)
    )
    return sum((row.value for row in rows), Decimal(0))


async def test_running_total_is_exact_through_late_new_and_rolled_events(store: RunningTotalStore) -> None:
    clock = FrozenClock(NOW)
    totals = RunningTotals(store, clock, refresh_after=timedelta(seconds=30))
    await store.insert_events(
        [
            token_event("e1", "acme-a", datetime(2026, 10, 1, 0, 0, 10, tzinfo=UTC), 100),  # before START
            token_event("e2", "acme-a", datetime(2026, 10, 1, 0, 0, 45, tzinfo=UTC), 7),  # START's minute
            token_event("e3", "acme-b", datetime(2026, 10, 5, 10, tzinfo=UTC), 1000),
            token_event("e4", "acme-a", datetime(2026, 10, 5, 11, tzinfo=UTC), 50_000, kind="input"),  # not output
            token_event("e5", "other", datetime(2026, 10, 5, 12, tzinfo=UTC), 9_999),  # not acme's
            token_event("e6", "acme-a", datetime(2026, 10, 20, 15, 29, 59, tzinfo=UTC), 20),
        ]
    )
    await roll_up_all(store)
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, NOW) == Decimal(1027)  # 7 + 1000 + 20

    # Not rolled up yet: a late event with an old time, and events after the snapshot's minute.
    await store.insert_events(
        [
            token_event("e7", "acme-b", datetime(2026, 10, 10, tzinfo=UTC), 3),
            token_event("e8", "acme-a", datetime(2026, 10, 20, 15, 30, 10, tzinfo=UTC), 4),
            token_event("e9", "acme-a", datetime(2026, 10, 20, 15, 30, 40, tzinfo=UTC), 5),
        ]
    )
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, NOW) == Decimal(1034)  # + 3 + 4
    later = NOW + timedelta(seconds=20)
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, later) == Decimal(1039)  # + 5
    assert await full_query(store, later) == Decimal(1039)

    # The rollup worker folds them: the kept snapshot predates that, nothing is counted twice.
    await roll_up_all(store)
    await store.insert_events([token_event("e7", "acme-b", datetime(2026, 10, 10, tzinfo=UTC), 3)])  # a retry
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, NOW) == Decimal(1034)
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, later) == Decimal(1039)

    # Older than refresh_after: the next read takes a new snapshot (now holding e7..e9), same totals.
    clock.set(datetime(2026, 10, 20, 15, 32, 5, tzinfo=UTC))
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, clock.now()) == Decimal(1039)
    await store.insert_events([token_event("e10", "acme-b", datetime(2026, 10, 20, 15, 32, 1, tzinfo=UTC), 11)])
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, clock.now()) == Decimal(1050)
    assert await full_query(store, clock.now()) == Decimal(1050)

    # A moment the snapshot has passed is left to the full query; so is a meter that is not additive.
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, datetime(2026, 10, 5, 12, tzinfo=UTC)) is None
    largest = Meter(slug="largest", event_type="llm.tokens", aggregation=Aggregation.MAX, value_property="$.tokens")
    assert await totals.total(largest, SUBJECTS, {}, START, NOW) is None
    assert await totals.total(TOKENS, (), OUTPUT, START, NOW) == Decimal(0)


async def test_a_changed_meter_definition_is_not_answered_from_the_old_snapshot(store: RunningTotalStore) -> None:
    clock = FrozenClock(NOW)
    totals = RunningTotals(store, clock)
    await store.insert_events(
        [
            token_event("e1", "acme-a", datetime(2026, 10, 2, tzinfo=UTC), 10),
            token_event("e2", "acme-a", datetime(2026, 10, 2, tzinfo=UTC), 200, kind="input"),
        ]
    )
    await roll_up_all(store)
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, NOW) == Decimal(10)
    counted = Meter(slug="tokens", event_type="llm.tokens", aggregation=Aggregation.COUNT, group_by={"type": "$.type"})
    await store.sync_meters([counted])
    await roll_up_all(store)
    assert await totals.total(counted, SUBJECTS, {}, START, NOW) == Decimal(2)
