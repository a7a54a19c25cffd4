"""TOLLWAY_EVENTS_RETENTION: raw events past it are deleted once rolled up; queries answer the same; SQLite
gives the space back; older events are refused at ingestion (their duplicates may be gone)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.metering.aggregation import MeterQuery
from tollway.metering.events import Event
from tollway.metering.ingest import EventValidationError
from tollway.metering.meters import Aggregation, Meter
from tollway.metering.retention import Retention, effective_retention
from tollway.metering.service import MeteringService

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=500)
KEEP = timedelta(days=458)  # the floor for the default lookback (90 days) and grace (1 hour)
PADDING = "x" * 400  # events big enough that deleting them frees pages


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlEventStore]:
    url = (
        f"sqlite:///{tmp_path / 'retention.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = create_sql_engine(url)
    await asyncio.to_thread(upgrade, engine)
    sql = SqlEventStore(engine, FrozenClock(NOW))
    yield sql
    await sql.close()


def ev(n: int, at: datetime) -> Event:
    return Event(id=f"e{n}", source="test", type="api.call", subject="acme", time=at, data={"v": n, "pad": PADDING})


def count(store: SqlEventStore, sql: str) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(text(sql)).scalar() or 0)


async def total(service: MeteringService) -> Decimal:
    rows = await service.query("calls", MeterQuery(start=OLD - timedelta(days=1), end=NOW))
    return sum((row.value for row in rows), Decimal(0))


async def test_expired_events_go_once_rolled_up_and_queries_do_not_change(store: SqlEventStore) -> None:
    service = MeteringService(store, FrozenClock(NOW), retention=KEEP)
    await service.sync_meters([Meter("calls", "api.call", Aggregation.SUM, "$.v", managed_by="config")])
    old = [ev(n, OLD + timedelta(minutes=n)) for n in range(1, 301)]  # sum 45150
    recent = [ev(n, NOW - timedelta(days=1, minutes=n)) for n in range(1001, 1011)]  # sum 10055
    await store.insert_events(old + recent)
    while await store.roll_up(100):
        pass
    late_old = ev(5000, OLD)  # stored after the roll-up: past the watermark, so kept for now
    await store.insert_events([late_old])
    assert await total(service) == Decimal(45150 + 10055 + 5000)
    sqlite = store.engine.dialect.name == "sqlite"
    pages_before = count(store, "PRAGMA page_count") if sqlite else 0

    retention = Retention(store, FrozenClock(NOW), KEEP, chunk=128)
    assert await retention.run_once() == 300
    assert count(store, "SELECT count(*) FROM events") == 11
    assert await total(service) == Decimal(45150 + 10055 + 5000), "the rollups answer for the deleted events"
    if sqlite:
        assert count(store, "PRAGMA freelist_count") == 0
        assert count(store, "PRAGMA page_count") < pages_before - 20

    while await store.roll_up(100):
        pass
    assert await retention.run_once() == 1  # the late one, once rolled up
    assert await total(service) == Decimal(45150 + 10055 + 5000)


async def test_events_older_than_the_retention_are_refused(store: SqlEventStore) -> None:
    service = MeteringService(store, FrozenClock(NOW), retention=KEEP)
    await service.sync_meters([])
    event = ev(1, NOW - KEEP - timedelta(seconds=1)).to_cloudevent()
    with pytest.raises(EventValidationError) as refused:
        await service.ingest([ev(2, NOW).to_cloudevent(), event])
    assert [(e.field, e.message) for e in refused.value.errors] == [
        ("[1].time", "older than the events retention (TOLLWAY_EVENTS_RETENTION)")
    ]
    assert await service.ingest(ev(3, NOW - KEEP + timedelta(seconds=1)).to_cloudevent()) == (1, 1)


def test_the_retention_is_never_below_what_invoices_may_still_read() -> None:
    assert effective_retention(None, lookback_days=90, grace_s=3600) is None
    assert effective_retention(timedelta(days=90), lookback_days=90, grace_s=3600) == timedelta(days=458)
    assert effective_retention(timedelta(days=30), lookback_days=0, grace_s=0) == timedelta(days=367)
    assert effective_retention(timedelta(days=800), lookback_days=90, grace_s=3600) == timedelta(days=800)
