"""Running totals (the entitlement's usage so far) stay exact as events arrive late, after the snapshot,
within the start's minute and after the rollup worker moves on — on memory, SQLite and PostgreSQL.

The expected totals are worked out by hand from the events listed in each step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tollway.adapters.memory.store import MemoryEventStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.metering.aggregation import MeterQuery
from tollway.metering.events import Event
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


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningTotalStore]:
    clock = FrozenClock(NOW)
    if request.param == "memory":
        memory = MemoryEventStore(clock)
        await memory.sync_meters([TOKENS])
        yield memory
        return
    url = (
        f"sqlite:///{tmp_path / 'totals.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    )
    engine = create_sql_engine(url)
    await asyncio.to_thread(upgrade, engine)
    sql = SqlEventStore(engine, clock)
    await sql.sync_meters([TOKENS])
    yield sql
    await sql.close()


def tokens(n: int, subject: str, kind: str, count: int, at: datetime) -> Event:
    return Event(f"e{n}", "test", "llm.tokens", subject, at, {"tokens": count, "type": kind})


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
            tokens(1, "acme-a", "output", 100, datetime(2026, 10, 1, 0, 0, 10, tzinfo=UTC)),  # before START
            tokens(2, "acme-a", "output", 7, datetime(2026, 10, 1, 0, 0, 45, tzinfo=UTC)),  # START's minute
            tokens(3, "acme-b", "output", 1000, datetime(2026, 10, 5, 10, tzinfo=UTC)),
            tokens(4, "acme-a", "input", 50_000, datetime(2026, 10, 5, 11, tzinfo=UTC)),  # not output
            tokens(5, "other", "output", 9_999, datetime(2026, 10, 5, 12, tzinfo=UTC)),  # not acme's
            tokens(6, "acme-a", "output", 20, datetime(2026, 10, 20, 15, 29, 59, tzinfo=UTC)),
        ]
    )
    await roll_up_all(store)
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, NOW) == Decimal(1027)  # 7 + 1000 + 20

    # Not rolled up yet: a late event with an old time, and events after the snapshot's minute.
    await store.insert_events(
        [
            tokens(7, "acme-b", "output", 3, datetime(2026, 10, 10, tzinfo=UTC)),
            tokens(8, "acme-a", "output", 4, datetime(2026, 10, 20, 15, 30, 10, tzinfo=UTC)),
            tokens(9, "acme-a", "output", 5, datetime(2026, 10, 20, 15, 30, 40, tzinfo=UTC)),
        ]
    )
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, NOW) == Decimal(1034)  # + 3 + 4
    later = NOW + timedelta(seconds=20)
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, later) == Decimal(1039)  # + 5
    assert await full_query(store, later) == Decimal(1039)

    # The rollup worker folds them: the kept snapshot predates that, nothing is counted twice.
    await roll_up_all(store)
    await store.insert_events([tokens(7, "acme-b", "output", 3, datetime(2026, 10, 10, tzinfo=UTC))])  # a retry
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, NOW) == Decimal(1034)
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, later) == Decimal(1039)

    # Older than refresh_after: the next read takes a new snapshot (now holding e7..e9), same totals.
    clock.set(datetime(2026, 10, 20, 15, 32, 5, tzinfo=UTC))
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, clock.now()) == Decimal(1039)
    await store.insert_events([tokens(10, "acme-b", "output", 11, datetime(2026, 10, 20, 15, 32, 1, tzinfo=UTC))])
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
            tokens(1, "acme-a", "output", 10, datetime(2026, 10, 2, tzinfo=UTC)),
            tokens(2, "acme-a", "input", 200, datetime(2026, 10, 2, tzinfo=UTC)),
        ]
    )
    await roll_up_all(store)
    assert await totals.total(TOKENS, SUBJECTS, OUTPUT, START, NOW) == Decimal(10)
    counted = Meter(slug="tokens", event_type="llm.tokens", aggregation=Aggregation.COUNT, group_by={"type": "$.type"})
    await store.sync_meters([counted])
    await roll_up_all(store)
    assert await totals.total(counted, SUBJECTS, {}, START, NOW) == Decimal(2)
