"""The direct path (insert_usage): a gateway call handed to the store as an `LlmCall` becomes exactly what its
events (`llm_call_events`) became through compaction: the same row, the same derived events byte for byte, or
the same plain events where the call has no row; and dedup across paths and encodings stays exact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.support.sample_calls import NOW
from tests.support.sample_calls import sample_call as call
from tollway.adapters.sql.calls import CallRow, KnownShapes, call_row, derived_hashes
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.ingest import _prepare, _prepare_usage, key_hash
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.metering.events import Event, to_micros
from tollway.metering.llm import AttemptRecord, LlmCall, TokenPrice, TokenUsage, llm_call_events
from tollway.metering.ports import EventFilter

INT32 = 2**31

texts = st.one_of(st.sampled_from(["gpt-4o", "claude", 'm\u00e9t\u00e9o "q"', "", "a:b", "x\n", "\x00"]), st.text())
counts = st.one_of(st.sampled_from([0, 1, 2048, INT32 - 1, INT32, -1]), st.integers(0, 10**6))
prices = st.one_of(
    st.none(),
    st.builds(
        TokenPrice,
        st.decimals(min_value=Decimal(0), max_value=Decimal(1), places=12, allow_nan=False),
        st.decimals(min_value=Decimal(0), max_value=Decimal(1), places=9, allow_nan=False),
        st.one_of(st.none(), st.sampled_from([Decimal("0.00000125"), Decimal(0), Decimal("1E-15")])),
        st.one_of(st.none(), st.sampled_from([Decimal("0.000003"), Decimal("2.5")])),
    ),
)
usages = st.one_of(st.none(), st.builds(TokenUsage, counts, counts, counts, counts, counts))
attempts = st.one_of(st.just(()), st.just((AttemptRecord("azure", "gpt-4o", 429, "status"),)))
calls = st.builds(
    LlmCall,
    request_id=st.one_of(st.sampled_from(["req_1", "", "a:request", "r\u00e9q"]), st.text(min_size=1)),
    subject=st.one_of(st.just("customer-1"), st.text()),
    time=st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    model=texts,
    upstream_model=texts,
    provider=st.sampled_from(["openai", "anthropic", "\t"]),
    route=st.sampled_from(["/v1/chat/completions", "/v1/messages"]),
    status_code=st.one_of(st.sampled_from([200, 502, 0, INT32, -INT32 - 1]), st.integers(-(2**40), 2**40)),
    streamed=st.booleans(),
    usage=usages,
    partial=st.booleans(),
    estimated=st.booleans(),
    price=prices,
    requested_model=st.one_of(st.none(), texts),
    attempts=attempts,
    interrupted=st.booleans(),
    duration_ms=st.one_of(st.none(), counts),
)
# Calls whose every field a column can hold (no failover attempts, a request id, counts and status in range): most
# of `calls` have some value that sends them as plain events, so these keep the path that builds a row (and its
# derived events) well exercised with few examples.
printable = st.text(st.characters(categories=["L", "M", "N", "P", "S"], include_characters=" "))
row_names = st.one_of(st.sampled_from(["gpt-4o", "claude", 'm\u00e9t\u00e9o "q"', "a:b", ""]), printable)
in_range = st.one_of(st.sampled_from([0, 1, 2048, INT32 - 1]), st.integers(0, INT32 - 1))
row_calls = st.builds(
    LlmCall,
    request_id=st.one_of(st.sampled_from(["req_1", "a:request", "r\u00e9q"]), st.text(min_size=1)),
    subject=st.one_of(st.just("customer-1"), st.text()),
    time=st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    model=row_names,
    upstream_model=row_names,
    provider=st.sampled_from(["openai", "anthropic"]),
    route=st.sampled_from(["/v1/chat/completions", "/v1/messages"]),
    status_code=st.one_of(st.sampled_from([200, 502, 0, INT32 - 1, -INT32]), st.integers(-INT32, INT32 - 1)),
    streamed=st.booleans(),
    usage=st.one_of(st.none(), st.builds(TokenUsage, in_range, in_range, in_range, in_range, in_range)),
    partial=st.booleans(),
    estimated=st.booleans(),
    price=prices,
    requested_model=st.one_of(st.none(), row_names),
    attempts=st.just(()),
    interrupted=st.booleans(),
    duration_ms=st.one_of(st.none(), in_range),
)


def through_events(call: LlmCall, known: KnownShapes) -> list[Any]:
    """What the writer got for a call before the direct path: its events, compacted where they compact."""
    return _prepare(llm_call_events(call), known)


# 500 examples, the same on every run (derandomized), half of them from `row_calls`: of 500 drawn this way about
# 280 keep a row (its derived events compared byte for byte) and 220 go as plain events. From `calls` alone, 3000
# examples (10 to 20 s of CPU) gave about 240 rows; the edge cases test below names the boundaries one by one.
@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.one_of(calls, row_calls))
def test_a_call_becomes_what_its_events_became(call: LlmCall) -> None:
    expected = through_events(call, {})
    assert _prepare_usage([call], {}) == expected
    row = call_row(call, {})
    assert (row is not None) == (len(expected) == 1 and isinstance(expected[0], CallRow))  # a row where one was kept
    if row is None:
        return
    assert expected == [row]
    # the row's derived events are llm_call_events' own, byte for byte
    plain = [
        (e.source, e.id, e.type, e.subject, to_micros(e.time), orjson.dumps(e.data).decode(), key_hash(e.source, e.id))
        for e in llm_call_events(call)
    ]
    assert list(row.rows) == plain
    assert row.keys == tuple((r[0], r[1]) for r in plain)  # what duplicate detection looks up, rows unbuilt
    assert derived_hashes(row.request_id, row.tokens) == [r[6] for r in plain]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(calls, st.builds(lambda n: plain_event(n), st.integers(0, 5))), max_size=12))
def test_a_batch_of_calls_and_events_is_prepared_as_before(items: list[LlmCall | Event]) -> None:
    known: KnownShapes = {}  # shared across the batch: a cached shape gives the same rows
    events = [e for item in items for e in (llm_call_events(item) if isinstance(item, LlmCall) else [item])]
    assert _prepare_usage(items, known) == _prepare(events, {})
    assert _prepare_usage(items, known) == _prepare(events, {})


def test_edge_cases_have_rows_where_compaction_kept_them() -> None:
    price = TokenPrice(Decimal("0.0000025"), Decimal("0.00001"))
    cases = [
        (call(usage=None), True),
        (call(usage=TokenUsage()), True),
        (call(usage=TokenUsage(cache_read=7)), True),
        (call(partial=True, estimated=True, interrupted=True, requested_model="fast", price=price), True),
        (call(price=price, duration_ms=None), True),
        (call(attempts=(AttemptRecord("azure", "gpt-4o", None, "timeout"),)), False),
        (call(usage=TokenUsage(input=INT32)), False),
        (call(model="bad\nname"), False),
        (call(request_id=""), False),
    ]
    for case, compact in cases:
        row = call_row(case, {})
        assert (row is not None) is compact, case
        assert _prepare_usage([case], {}) == through_events(case, {})
        if row is not None:
            assert row.request_id == case.request_id


def plain_event(n: int) -> Event:
    return Event(id=f"e{n}", source="app", type="api.call", subject="customer-1", time=NOW, data={"n": n})


CALLS = [
    call(1),
    call(2, price=None, duration_ms=None),
    call(3, partial=True, estimated=True, interrupted=True, requested_model="fast"),
    call(4, usage=None, status_code=502),
    call(5, attempts=(AttemptRecord("azure", "gpt-4o", 429, "status"),)),  # no row: its events
    call(6, model='m\u00e9t\u00e9o "quoted"', route="/v1/messages"),
]
EVENTS = [e for c in CALLS for e in llm_call_events(c)]


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlEventStore]:
    url = f"sqlite:///{tmp_path / 'calls.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = create_sql_engine(url)
    await asyncio.to_thread(upgrade, engine)
    sql = SqlEventStore(engine, FrozenClock(NOW))
    yield sql
    await sql.close()


def count(store: SqlEventStore, sql: str) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(text(sql)).scalar() or 0)


def exact(event: Event) -> tuple[Any, ...]:
    return (event.id, event.source, event.type, event.subject, event.time, orjson.dumps(event.data))


async def test_calls_stored_directly_read_as_their_events(store: SqlEventStore) -> None:
    items: list[Event | LlmCall] = [plain_event(1), *CALLS, plain_event(2)]
    assert await store.insert_usage(items) == len(EVENTS) + 2
    assert count(store, "SELECT count(*) FROM llm_calls") == len(CALLS) - 1
    assert count(store, "SELECT count(*) FROM events") == len(llm_call_events(CALLS[4])) + 2
    listed = await store.list_events(EventFilter(limit=1000))
    assert sorted(exact(e.event) for e in listed) == sorted(exact(e) for e in [*EVENTS, plain_event(1), plain_event(2)])
    after = await store.load_events_after("llm.tokens", 0, None, None, None)
    assert [exact(e) for e, _ in after] == [exact(e) for e in EVENTS if e.type == "llm.tokens"]


async def test_a_call_counts_once_whichever_path_stored_it(store: SqlEventStore) -> None:
    assert await store.insert_usage(CALLS) == len(EVENTS)
    assert await store.insert_usage(CALLS) == 0  # the journal replayed after a crash
    assert await store.insert_events(EVENTS) == 0  # the same calls as events (an older journal line, a peer)
    assert await store.insert_events(EVENTS[:2]) == 0  # or in pieces
    assert store.stats.inserted_total == len(EVENTS)
    assert store.stats.duplicates_total == 2 * len(EVENTS) + 2
    assert store.stats.conflicts_total == 0
    assert await store.insert_usage([call(1, usage=TokenUsage(input=999, output=21))]) == 0
    assert store.stats.conflicts_total == 3  # input, output (its reasoning) and request differ
    assert len(await store.list_events(EventFilter(limit=1000))) == len(EVENTS)


async def test_a_call_and_its_changed_events_in_one_batch_count_once(store: SqlEventStore) -> None:
    """The call's derived rows are built only when its ids meet another copy: here its own events, changed, in
    the same batch (the rows are the kept copies the changed events are compared with)."""
    changed = llm_call_events(call(1, usage=TokenUsage(input=999, output=21)))
    assert await store.insert_usage([call(1), *changed]) == len(llm_call_events(call(1)))
    assert store.stats.conflicts_total == len(changed) == 3  # input, output (its reasoning), request: all differ
    assert store.stats.duplicates_total == 0
    assert count(store, "SELECT count(*) FROM llm_calls") == 1
    assert await store.insert_usage([call(1)]) == 0
    assert store.stats.conflicts_total == 3


async def test_a_call_stored_as_events_first_counts_once(store: SqlEventStore) -> None:
    events = llm_call_events(CALLS[0])
    assert await store.insert_events(events[:2]) == 2  # a batch boundary cut the call: plain events
    assert await store.insert_usage([CALLS[0], CALLS[1]]) == len(events) - 2 + len(llm_call_events(CALLS[1]))
    assert count(store, "SELECT count(*) FROM llm_calls") == 1  # CALLS[1] only
    assert sorted(exact(e.event) for e in await store.list_events(EventFilter())) == sorted(
        exact(e) for e in [*events, *llm_call_events(CALLS[1])]
    )


async def test_a_call_stored_before_the_upgrade_counts_once(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    for url in (f"sqlite:///{tmp_path / 'old.db'}", request.getfixturevalue("postgres_url")):
        engine = create_sql_engine(url)
        await asyncio.to_thread(upgrade, engine, "0020_events_key_hash")
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
        await asyncio.to_thread(upgrade, engine)
        store = SqlEventStore(engine, FrozenClock(NOW))
        try:
            assert await store.insert_usage([CALLS[0], CALLS[1]]) == len(llm_call_events(CALLS[1]))
            assert store.stats.duplicates_total == len(old)
            assert count(store, "SELECT count(*) FROM llm_calls") == 1
            listed = await store.list_events(EventFilter(limit=100))
            assert sorted(exact(e.event) for e in listed) == sorted(
                exact(e) for e in [*old, *llm_call_events(CALLS[1])]
            )
        finally:
            await store.close()
