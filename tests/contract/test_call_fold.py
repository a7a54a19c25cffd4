"""Gateway calls folded straight from their llm_calls columns (adapters/sql/call_fold.py) store exactly the pure
Python fold's partials over the calls' derived events, on SQLite and PostgreSQL.

Hypothesis sends calls (stored as one row each) whose cost texts are every spelling a sender may use ("0.50",
"1e3", "-0", " 7 ", 13 places, 19 digits, text), some calls as plain events (a failover), times before and
after 1970, folded in two steps (the second merges into what the first stored), over meters that read every
key kind (counts, texts, flags, absent keys, per-type and total costs) with every aggregation. The stored
rollups must equal `contribute` over the same events, the decimal texts included (the same places), with the
same count of skipped values.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from tollway.adapters.sql.call_fold import call_columns
from tollway.adapters.sql.rollups import _events_between, fold
from tollway.adapters.sql.schema import meter_rollups
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.metering.events import Event
from tollway.metering.llm import AttemptRecord, LlmCall, TokenPrice, TokenUsage, llm_call_events
from tollway.metering.meters import BUILT_IN_METERS, Aggregation, Meter
from tollway.metering.rollup import Partial, RollupKey, contribute, partial_from_row

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BASE = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
AGGREGATIONS = [a for a in Aggregation if a is not Aggregation.UNIQUE_COUNT]
COMMON = {"m": "$.model", "s": "$.streamed", "i": "$.interrupted", "c": "$.status_code", "x": "$.nope"}
METERS = [
    *BUILT_IN_METERS,
    *(Meter(f"cost_{a.name.lower()}", "llm.request", a, "$.cost_usd", COMMON) for a in AGGREGATIONS),
    Meter("type_cost", "llm.tokens", Aggregation.SUM, "$.cost_usd", {"t": "$.type", "r": "$.reasoning_tokens"}),
    Meter("last_tokens", "llm.tokens", Aggregation.LATEST, "$.tokens", {"k": "$.cost_usd", "u": "$.upstream_model"}),
    Meter("slowest", "llm.request", Aggregation.MAX, "$.duration_ms", {"q": "$.requested_model", "p": "$.partial"}),
    Meter("reasoning", "llm.request", Aggregation.AVG, "$.reasoning_tokens", {"e": "$.estimated", "r": "$.route"}),
]
COSTS = [
    "0.0025", "0.50", "1e3", "-0", "-0.0", " 7 ", "0", "5", "-2.5", "5.", ".5", "00.25", "1.0", "abc", "+1",
    "0.0000000000001", "0.000000000001", "123456.123456789012", "1234567.123456789012", "999999999999999999",
    "-999999.999999999999", "\u0661", "1_000",
]  # fmt: skip

texts = st.sampled_from(["gpt-4o", "claude", 'm\u00e9t\u00e9o "q"', "a:b", "200", "true"])
counts = st.one_of(st.sampled_from([0, 1, 2048, 2**31 - 1]), st.integers(0, 10**6))
prices = st.one_of(
    st.none(),
    st.builds(
        TokenPrice,
        st.decimals(min_value=Decimal(0), max_value=Decimal(1), places=12, allow_nan=False),
        st.decimals(min_value=Decimal(-1), max_value=Decimal(1), places=9, allow_nan=False),
        st.one_of(st.none(), st.sampled_from([Decimal("0.00000125"), Decimal(0), Decimal("1E-15")])),
    ),
)
calls = st.builds(
    LlmCall,
    request_id=st.just("r"),
    subject=st.sampled_from(["acme", "globex"]),
    time=st.integers(-3 * 86_400, 3 * 86_400).map(lambda s: BASE + timedelta(seconds=s)),
    model=texts,
    upstream_model=texts,
    provider=st.sampled_from(["openai", "anthropic"]),
    route=st.sampled_from(["/v1/chat/completions", "/v1/messages"]),
    status_code=st.sampled_from([200, 502, -1]),
    streamed=st.booleans(),
    usage=st.one_of(st.none(), st.builds(TokenUsage, counts, counts, counts, counts, counts)),
    partial=st.booleans(),
    estimated=st.booleans(),
    price=prices,
    requested_model=st.one_of(st.none(), texts),
    attempts=st.one_of(st.just(()), st.just((AttemptRecord("azure", "gpt-4o", 429, "status"),))),
    interrupted=st.booleans(),
    duration_ms=st.one_of(st.none(), counts),
)
costs = st.one_of(st.none(), st.sampled_from(COSTS), st.text(alphabet="0123456789.-e", max_size=8))
batches = st.lists(st.tuples(calls, costs, st.booleans()), max_size=12)


def build(raw: list[tuple[LlmCall, str | None, bool]], early: bool) -> list[Event]:
    """The calls' events; `cost` replaces the request's cost text (it still compacts into one row)."""
    events = []
    for n, (call, cost, before_1970) in enumerate(raw):
        shift = timedelta(days=20_000) if early and before_1970 else timedelta(0)
        for event in llm_call_events(replace(call, request_id=f"req{n}", time=call.time - shift)):
            if cost is not None and event.type == "llm.request":
                event = replace(event, data={**event.data, "cost_usd": cost})
            events.append(event)
    return events


def signature(partials: dict[RollupKey, Partial], aggregation: Aggregation) -> dict[RollupKey, tuple[Any, ...]]:
    """Every field; the sum as its text too (the same places as the reference's sum)."""
    found = {}
    for key, p in partials.items():
        latest = (p.latest, p.latest_us, p.latest_seq) if aggregation is Aggregation.LATEST else ()
        found[key] = (p.count, str(p.total), p.minimum, p.maximum, p.first_us, *latest)
    return found


def stored_partials(engine: Engine, slug: str) -> dict[RollupKey, Partial]:
    with engine.connect() as connection:
        rows = connection.execute(select(meter_rollups).where(meter_rollups.c.meter == slug)).all()
    return {(r.level_us, r.bucket_us, r.subject, r.dims): partial_from_row(r) for r in rows}


def check(engine: Engine, raw: list[tuple[LlmCall, str | None, bool]], early: bool, split: int) -> None:
    store = SqlEventStore(engine, FrozenClock(NOW))

    async def insert() -> None:
        await store.insert_events(build(raw, early))
        await store.close()

    asyncio.run(insert())
    for meter in METERS:
        with engine.begin() as connection:
            stored = _events_between(connection, 0, 10**12, meter.event_type)
            middle = stored[min(split, len(stored)) - 1][1] if stored and split else 0
            skipped = fold(connection, meter, 0, middle) + fold(connection, meter, middle, 10**12)
        expected = contribute(meter, stored)
        got = stored_partials(engine, meter.slug)
        assert signature(got, meter.aggregation) == signature(expected.partials, meter.aggregation), meter.slug
        assert skipped == expected.skipped, meter.slug


def clear(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in ("events", "llm_calls", "meter_rollups"):
            connection.exec_driver_sql(f"DELETE FROM {table}")


def test_the_meters_here_read_columns() -> None:
    assert all(call_columns(m) is not None for m in METERS)
    assert call_columns(Meter("n", "llm.tokens", Aggregation.SUM, "$.tokens.deep")) is None
    assert call_columns(Meter("t", "llm.tokens", Aggregation.SUM, "$.model")) is None  # a text as a value
    assert call_columns(Meter("o", "api.call", Aggregation.SUM, "$.tokens")) is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches, st.booleans(), st.integers(0, 40))
def test_sqlite_call_fold_equals_python_fold(
    sqlite_engine: Engine, raw: list[tuple[LlmCall, str | None, bool]], early: bool, split: int
) -> None:
    clear(sqlite_engine)
    check(sqlite_engine, raw, early, split)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches, st.booleans(), st.integers(0, 40))
def test_postgres_call_fold_equals_python_fold(
    postgres_engine: Engine, raw: list[tuple[LlmCall, str | None, bool]], early: bool, split: int
) -> None:
    clear(postgres_engine)
    check(postgres_engine, raw, early, split)


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_cost_sums_keep_their_places_across_steps(db: str, request: pytest.FixtureRequest) -> None:
    """Folded in two steps: new buckets stored by SQL, the second step's merged into them in Decimal."""
    engine: Engine = request.getfixturevalue(f"{db}_engine")
    costs = ["0.0025", "0.0075", "1.5", "-0.25", "0.000000000001", "999999.5"]
    base = LlmCall(
        request_id="r", subject="acme", time=BASE, model="gpt-4o", upstream_model="gpt-4o", provider="openai",
        route="/v1/chat/completions", status_code=200, streamed=False, usage=TokenUsage(input=1, output=1),
    )  # fmt: skip
    check(engine, [(base, cost, False) for cost in costs], False, 3)
    meter = next(m for m in METERS if m.slug == "cost_sum")
    totals = {p.total for p in stored_partials(engine, meter.slug).values()}
    assert {str(t) for t in totals} == {"1000000.760000000001"}
