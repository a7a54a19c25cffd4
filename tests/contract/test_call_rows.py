"""One stored row per gateway call (migration 0021, adapters/sql/calls.py) on SQLite and PostgreSQL: every
reader sees the CloudEvents `llm_call_events` makes, exactly; a replayed call is stored once, whether it was
stored as one row, as plain events before the upgrade, or in pieces; retention deletes call rows too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from tests.support.sample_calls import NOW
from tests.support.sample_calls import sample_call as call
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.ingest import key_hash
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.metering.aggregation import MeterQuery
from tollway.metering.events import Event, from_micros, to_micros
from tollway.metering.llm import AttemptRecord, TokenUsage, llm_call_events
from tollway.metering.meters import Aggregation, Meter
from tollway.metering.ports import EventFilter
from tollway.metering.service import MeteringService

TOKENS = Meter("tokens", "llm.tokens", Aggregation.SUM, "$.tokens", group_by={"type": "$.type"}, managed_by="config")


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlEventStore]:
    url = f"sqlite:///{tmp_path / 'calls.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = create_sql_engine(url)
    await asyncio.to_thread(upgrade, engine)
    sql = SqlEventStore(engine, FrozenClock(NOW))
    yield sql
    await sql.close()


CALLS = [
    call(1),
    call(2, price=None, duration_ms=None),
    call(3, partial=True, estimated=True, interrupted=True, requested_model="fast"),
    call(4, usage=None, status_code=502),
    call(5, attempts=(AttemptRecord("azure", "gpt-4o", 429, "status"),)),  # failover: stored as plain events
    call(6, model='m\u00e9t\u00e9o "quoted"', route="/v1/messages"),
]


def exact(event: Event) -> tuple[Any, ...]:
    """An event as a comparable value, JSON types kept (True is not 1)."""
    data = orjson.dumps(event.data, option=orjson.OPT_SORT_KEYS)
    return (event.id, event.source, event.type, event.subject, event.time, data)


def count(store: SqlEventStore, sql: str) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(text(sql)).scalar() or 0)


async def test_readers_see_the_calls_events_exactly(store: SqlEventStore) -> None:
    expected = [event for c in CALLS for event in llm_call_events(c)]
    assert await store.insert_events(expected) == len(expected)
    assert count(store, "SELECT count(*) FROM llm_calls") == len(CALLS) - 1
    assert count(store, "SELECT count(*) FROM events") == len(llm_call_events(CALLS[4]))
    assert count(store, "SELECT count(*) FROM llm_call_shapes") == 5

    listed = await store.list_events(EventFilter(limit=1000))
    assert sorted(exact(e.event) for e in listed) == sorted(exact(e) for e in expected)
    assert all(e.ingested_at == NOW for e in listed)
    for kind in ("llm.tokens", "llm.request", "llm.attempt"):
        wanted = [exact(e) for e in expected if e.type == kind]
        assert [exact(e) for e in await store.load_events(kind, None, None, None)] == wanted
        assert [exact(e) for e in await store.latest_events(kind, 3)] == wanted[::-1][:3]
    subject = [exact(e) for e in expected if e.type == "llm.tokens" and e.subject == "customer-1"]
    start, end = NOW - timedelta(minutes=58), NOW - timedelta(minutes=54)
    loaded = await store.load_events("llm.tokens", start, end, ["customer-1"])
    assert [exact(e) for e in loaded] == [s for s in subject if start <= s[4] < end]
    after = await store.load_events_after("llm.tokens", 0, None, None, None)
    assert [exact(e) for e, _ in after] == [exact(e) for e in expected if e.type == "llm.tokens"]
    seqs = [seq for _, seq in after]
    assert seqs == sorted(set(seqs))
    one = await store.list_events(EventFilter(event_id="req_0003:cache_read"))
    assert [exact(e.event) for e in one] == [exact(e) for e in expected if e.id == "req_0003:cache_read"]
    assert await store.list_events(EventFilter(event_id="req_0004:cache_read")) == []  # none used: no event
    span = await store.event_span("llm.request")
    assert span is not None
    assert span[0] <= to_micros(CALLS[0].time) < to_micros(CALLS[-1].time) < span[1]


async def test_the_listing_shows_a_call_as_before(store: SqlEventStore) -> None:
    """Literal values: what the events API listed for this call when it was stored as four events."""
    made = call(7, streamed=True, usage=TokenUsage(input=120, output=30, cache_read=64, reasoning=8))
    await store.insert_events(llm_call_events(made))
    listed = await store.list_events(EventFilter(limit=10))
    common = {
        "model": "gpt-4o",
        "requested_model": "gpt-4o",
        "upstream_model": "gpt-4o-2024-08-06",
        "provider": "openai",
        "status_code": 200,
        "route": "/v1/chat/completions",
        "streamed": True,
        "partial": False,
        "estimated": False,
    }
    got = [(e.event.id, e.event.type, e.event.subject, e.event.time, e.event.data) for e in listed]
    at = datetime(2026, 11, 23, 11, 7, tzinfo=UTC)
    assert got == [
        (
            "req_0007:request",
            "llm.request",
            "customer-1",
            at,
            {
                **common,
                "input_tokens": 120,
                "output_tokens": 30,
                "cache_read_tokens": 64,
                "cache_write_tokens": 0,
                "reasoning_tokens": 8,
                "cost_usd": "0.00068",
                "duration_ms": 47,
            },
        ),
        (
            "req_0007:cache_read",
            "llm.tokens",
            "customer-1",
            at,
            {"tokens": 64, "type": "cache_read", **common, "cost_usd": "0.00008"},
        ),
        (
            "req_0007:output",
            "llm.tokens",
            "customer-1",
            at,
            {"tokens": 30, "type": "output", **common, "reasoning_tokens": 8, "cost_usd": "0.0003"},
        ),
        (
            "req_0007:input",
            "llm.tokens",
            "customer-1",
            at,
            {"tokens": 120, "type": "input", **common, "cost_usd": "0.0003"},
        ),
    ]
    assert [type(e.event.data["streamed"]) for e in listed] == [bool] * 4


async def test_a_replayed_call_is_stored_once(store: SqlEventStore) -> None:
    events = [event for c in CALLS for event in llm_call_events(c)]
    await store.insert_events(events)
    assert await store.insert_events(events) == 0  # the journal replayed after a crash
    assert await store.insert_events(events[:2]) == 0  # or in other batches: a call in pieces
    assert await store.insert_events(events[2:7]) == 0
    assert store.stats.inserted_total == len(events)
    assert store.stats.duplicates_total == len(events) + 7
    assert store.stats.conflicts_total == 0
    changed = llm_call_events(call(1, usage=TokenUsage(input=999, output=21)))
    assert await store.insert_events(changed) == 0
    assert store.stats.conflicts_total == 3  # input, output (its reasoning) and request differ
    assert len(await store.list_events(EventFilter(limit=1000))) == len(events)


async def test_a_call_stored_in_pieces_then_whole_counts_once(store: SqlEventStore) -> None:
    events = llm_call_events(CALLS[0])
    assert await store.insert_events(events[:2]) == 2  # a batch boundary cut the call: plain events
    assert await store.insert_events(events) == len(events) - 2
    assert count(store, "SELECT count(*) FROM llm_calls") == 0
    assert sorted(exact(e.event) for e in await store.list_events(EventFilter())) == sorted(exact(e) for e in events)


async def test_a_call_stored_before_the_upgrade_counts_once(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    for url in (f"sqlite:///{tmp_path / 'old.db'}", request.getfixturevalue("postgres_url")):
        engine = create_sql_engine(url)
        upgrade(engine, "0020_events_key_hash")
        old = llm_call_events(CALLS[0])
        insert = text(
            "INSERT INTO events (source, id, type, subject, time_us, stored_us, data, key_hash)"
            " VALUES (:source, :id, :type, :subject, :time, :time, :data, :hash)"
        )
        with engine.begin() as connection:
            for e in old:
                row = {"source": e.source, "id": e.id, "type": e.type, "subject": e.subject, "time": to_micros(e.time)}
                connection.execute(
                    insert, {**row, "data": orjson.dumps(e.data).decode(), "hash": key_hash(e.source, e.id)}
                )
        upgrade(engine)
        store = SqlEventStore(engine, FrozenClock(NOW))
        service = MeteringService(store, FrozenClock(NOW))
        try:
            await service.sync_meters([TOKENS])
            assert await store.insert_events([*old, *llm_call_events(CALLS[1])]) == len(llm_call_events(CALLS[1]))
            assert count(store, "SELECT count(*) FROM llm_calls") == 1
            while await store.roll_up(3):  # steps that cut calls' sequence ranges
                pass
            rows = await service.query("tokens", MeterQuery(start=NOW - timedelta(days=1), end=NOW, group_by=("type",)))
            totals = {row.group_by["type"]: row.value for row in rows}
            usage = [c.usage for c in CALLS[:2]]
            assert totals["input"] == sum(u.input for u in usage if u)
            assert totals["output"] == sum(u.output for u in usage if u)
        finally:
            await store.close()


async def test_rollups_and_retention_over_call_rows(store: SqlEventStore) -> None:
    service = MeteringService(store, FrozenClock(NOW))
    await service.sync_meters([TOKENS])
    events = [event for c in CALLS for event in llm_call_events(c)]
    for offset in range(0, len(events), 4):  # batches that cut calls: some stored as plain events
        await store.insert_events(events[offset : offset + 4])
    query = MeterQuery(start=NOW - timedelta(days=1), end=NOW, group_by=("type",))
    before = {row.group_by["type"]: row.value for row in await service.query("tokens", query)}  # raw tail
    while await store.roll_up(7):
        pass
    assert {row.group_by["type"]: row.value for row in await service.query("tokens", query)} == before
    expected: dict[str, Decimal] = {}
    for e in events:
        if e.type == "llm.tokens":
            expected[str(e.data["type"])] = expected.get(str(e.data["type"]), Decimal(0)) + int(str(e.data["tokens"]))
    assert before == expected
    await service.create_meter(Meter("requests", "llm.request", Aggregation.COUNT, managed_by="api"))  # a backfill
    counted = await service.query("requests", MeterQuery(start=NOW - timedelta(days=1), end=NOW))
    assert sum(row.value for row in counted) == len(CALLS)
    while await store.expire_events(NOW + timedelta(days=1), 2):
        pass
    assert count(store, "SELECT count(*) FROM llm_calls") + count(store, "SELECT count(*) FROM events") == 0
    assert {row.group_by["type"]: row.value for row in await service.query("tokens", query)} == before
    await store.insert_events(llm_call_events(call(50, time=NOW - timedelta(minutes=1))))  # numbers go on
    while await store.roll_up(7):
        pass
    after = {row.group_by["type"]: row.value for row in await service.query("tokens", query)}
    assert after["input"] == before["input"] + 150


async def test_a_downgrade_moves_the_calls_back_into_events(store: SqlEventStore) -> None:
    from alembic import command

    from tollway.adapters.sql.migrate import alembic_config

    events = [event for c in CALLS for event in llm_call_events(c)]
    await store.insert_events(events)
    listed = sorted(exact(e.event) for e in await store.list_events(EventFilter(limit=1000)))
    await store.close()
    await asyncio.to_thread(command.downgrade, alembic_config(store.engine), "0020_events_key_hash")
    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT id, source, type, subject, time_us, data, key_hash FROM events")).all()
    assert len(rows) == len(events)
    assert all(r.key_hash == key_hash(r.source, r.id) for r in rows)
    old = [Event(r.id, r.source, r.type, r.subject, from_micros(r.time_us), orjson.loads(r.data)) for r in rows]
    assert sorted(exact(e) for e in old) == listed
    await asyncio.to_thread(upgrade, store.engine)
    again = SqlEventStore(store.engine, FrozenClock(NOW))
    try:
        assert await again.insert_events(events) == 0
    finally:
        await again.close()


async def test_folds_of_call_rows_answer_as_the_reference(store: SqlEventStore) -> None:
    """Meters over the calls' events, folded in the database from derived data that holds only the keys each
    meter reads, against the in-memory reference over the same events."""
    from tollway.adapters.memory.store import MemoryEventStore

    meters = [
        Meter("in_by_model", "llm.request", Aggregation.SUM, "$.input_tokens", {"m": "$.model", "p": "$.provider"}),
        Meter("cost", "llm.request", Aggregation.SUM, "$.cost_usd", {"s": "$.streamed"}),
        Meter("biggest", "llm.tokens", Aggregation.MAX, "$.tokens", {"t": "$.type", "i": "$.interrupted"}),
        Meter("last", "llm.tokens", Aggregation.LATEST, "$.tokens", {"r": "$.reasoning_tokens"}),
        Meter("slow", "llm.request", Aggregation.MIN, "$.duration_ms"),
        Meter("calls", "llm.request", Aggregation.COUNT),
        Meter("odd", "llm.tokens", Aggregation.SUM, "$.tokens.deep", {"x": "$[0]"}),
    ]
    events = [event for c in CALLS for event in llm_call_events(c)]
    reference = MemoryEventStore(FrozenClock(NOW))
    answers = []
    for target in (store, reference):
        service = MeteringService(target, FrozenClock(NOW))
        await service.sync_meters([replace(m, managed_by="config") for m in meters])
        await target.insert_events(events)
        while await target.roll_up(5):
            pass
        got = {}
        for meter in meters:
            groups = tuple(meter.group_by)
            rows = await service.query(meter.slug, MeterQuery(start=NOW - timedelta(days=1), end=NOW, group_by=groups))
            got[meter.slug] = sorted((repr(sorted(r.group_by.items())), r.value) for r in rows)
        answers.append(got)
    assert answers[0] == answers[1]
    assert answers[0]["calls"] == [("[]", Decimal(len(CALLS)))]
    assert ("[('m', 'gpt-4o'), ('p', 'openai')]", Decimal(sum(c.usage.input for c in CALLS[:5] if c.usage))) in answers[
        0
    ]["in_by_model"]


async def test_a_writer_from_before_0021_fails_on_postgresql(request: pytest.FixtureRequest) -> None:
    """It would number its events from the column's sequence, below the numbers the writer gave: refused."""
    from sqlalchemy.exc import DBAPIError

    engine = create_sql_engine(request.getfixturevalue("postgres_url"))
    await asyncio.to_thread(upgrade, engine)
    store = SqlEventStore(engine, FrozenClock(NOW))
    try:
        await store.insert_events(llm_call_events(CALLS[0]))
    finally:
        await store.close()
    old = (
        "INSERT INTO events (source, id, type, subject, time_us, stored_us, data, key_hash)"
        " VALUES ('t', '1', 'api.tokens', 'acme', 1, 1, '{}', 7)"
    )
    with pytest.raises(DBAPIError, match="seq"), engine.begin() as connection:
        connection.execute(text(old))
    engine.dispose()
