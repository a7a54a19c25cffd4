"""The database's rollup fold (adapters/sql/fold.py) stores exactly the pure Python fold's partials.

Hypothesis sends events whose values and group-by values are every JSON kind (big and negative
integers, floats, numeric strings, booleans, null, unicode with control characters and NUL,
nested objects, arrays, absent), times before and after 1970, and every aggregation; the database
folds what it can read exactly and leaves the rest to Python, in two steps (the second merges
into what the first stored), and the stored rollups must equal `contribute` over all the events,
bucket by bucket, with the same count of skipped values.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from tollway.adapters.sql.fold import sql_foldable
from tollway.adapters.sql.rollups import _events_between, fold
from tollway.adapters.sql.schema import meter_rollups
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.metering.events import Event
from tollway.metering.meters import Aggregation, Meter
from tollway.metering.rollup import Partial, RollupKey, contribute, partial_from_row

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BASE = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
GROUP_BY = {"model": "$.model", "nested": "$.meta.kind", "second": "$.list[1]", "odd": "$['odd key-1']"}

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(min_value=-5, max_value=5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(max_size=6),
    st.decimals(min_value=-(10**6), max_value=10**6, places=4, allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["12", " 7 ", "1e3", "0.50", "NaN", "-0", "\u0000", "a\u0000b", 'q"\\', "\u2028"]),
)
json_values = st.one_of(
    scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=2), scalars, max_size=2)
)
maybe = st.one_of(st.just("absent"), json_values)

events_strategy = st.lists(
    st.tuples(
        st.integers(min_value=-3 * 86_400, max_value=3 * 86_400),  # seconds from BASE
        st.sampled_from(["acme", "globex", "ünï"]),
        maybe,  # value
        maybe,  # model
        maybe,  # meta.kind
        maybe,  # list[1]
        maybe,  # odd key
    ),
    max_size=25,
)
aggregations = st.sampled_from([a for a in Aggregation if a is not Aggregation.UNIQUE_COUNT])
before_1970 = st.booleans()
splits = st.integers(min_value=0, max_value=25)  # events folded in the first of two steps


def build(raw: list[tuple[Any, ...]], early: bool) -> list[Event]:
    found = []
    base = datetime(1969, 12, 31, 12, tzinfo=UTC) if early else BASE
    for n, (seconds, subject, value, model, kind, second, odd) in enumerate(raw):
        data: dict[str, Any] = {}
        for key, item in (("v", value), ("model", model), ("odd key-1", odd)):
            if item != "absent":
                data[key] = item
        if kind != "absent":
            data["meta"] = {"kind": kind}
        if second != "absent":
            data["list"] = ["first", second]
        found.append(
            Event(
                id=f"f{n}",
                source="fold",
                type="t",
                subject=subject,
                time=base + timedelta(seconds=seconds),
                data=data,
            )
        )
    return found


def signature(partials: dict[RollupKey, Partial], aggregation: Aggregation) -> dict[RollupKey, tuple[Any, ...]]:
    found = {}
    for key, p in partials.items():
        latest = (p.latest, p.latest_us, p.latest_seq) if aggregation is Aggregation.LATEST else ()
        found[key] = (p.count, p.total, p.minimum, p.maximum, p.first_us, *latest)
    return found


def check(engine: Engine, raw: list[tuple[Any, ...]], aggregation: Aggregation, early: bool, split: int) -> None:
    """Fold in two steps (the second merges into what the first stored), compare with one Python fold."""
    meter = Meter("m", "t", aggregation, None if aggregation is Aggregation.COUNT else "$.v", GROUP_BY)
    assert sql_foldable(meter)
    store = SqlEventStore(engine, FrozenClock(NOW))

    async def insert() -> None:
        await store.insert_events(build(raw, early))
        await store.close()

    asyncio.run(insert())
    with engine.begin() as connection:
        stored = _events_between(connection, 0, 10**12, "t")
        middle = stored[min(split, len(stored)) - 1][1] if stored and split else 0
        skipped = fold(connection, meter, 0, middle)
        skipped += fold(connection, meter, middle, 10**12)
        rows = connection.execute(select(meter_rollups).where(meter_rollups.c.meter == "m")).all()
    got = {(r.level_us, r.bucket_us, r.subject, r.dims): partial_from_row(r) for r in rows}
    expected = contribute(meter, stored)
    assert signature(got, aggregation) == signature(expected.partials, aggregation)
    assert skipped == expected.skipped


def clear(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM events")
        connection.exec_driver_sql("DELETE FROM meter_rollups")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events_strategy, aggregations, before_1970, splits)
def test_sqlite_fold_equals_python_fold(
    sqlite_engine: Engine, raw: list[tuple[Any, ...]], aggregation: Aggregation, early: bool, split: int
) -> None:
    clear(sqlite_engine)
    check(sqlite_engine, raw, aggregation, early, split)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events_strategy, aggregations, before_1970, splits)
def test_postgres_fold_equals_python_fold(
    postgres_engine: Engine, raw: list[tuple[Any, ...]], aggregation: Aggregation, early: bool, split: int
) -> None:
    clear(postgres_engine)
    check(postgres_engine, raw, aggregation, early, split)


def test_meters_the_database_cannot_fold_exactly_go_to_python() -> None:
    assert not sql_foldable(Meter("u", "t", Aggregation.UNIQUE_COUNT, "$.v"))
    assert not sql_foldable(Meter("q", "t", Aggregation.SUM, "$['a\"b']"))
    assert sql_foldable(Meter("s", "t", Aggregation.SUM, "$.v", {"k": "$['a b']", "i": "$.x[0]"}))


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_folds_merge_near_64_bits_and_decimals_exactly(db: str, request: pytest.FixtureRequest) -> None:
    """Each event folded on its own: sums grow past 18 digits and 64 bits, a decimal joins an integer sum."""
    engine: Engine = request.getfixturevalue(f"{db}_engine")
    values: list[object] = [999_999_999_999_999_999, 5, 9_000_000_000_000_000_000, "0.25", -3, 7]
    meter = Meter("m", "t", Aggregation.SUM, "$.v", {"model": "$.model"})
    store = SqlEventStore(engine, FrozenClock(NOW))
    events = [
        Event(id=f"n{n}", source="s", type="t", subject="acme", time=BASE, data={"v": v, "model": "x"})
        for n, v in enumerate(values)
    ]

    async def insert() -> None:
        await store.insert_events(events)
        await store.close()

    asyncio.run(insert())
    with engine.begin() as connection:
        stored = _events_between(connection, 0, 10**12, "t")
        low = 0
        for _, seq in stored:
            fold(connection, meter, low, seq)
            low = seq
        rows = connection.execute(select(meter_rollups).where(meter_rollups.c.meter == "m")).all()
    assert {partial_from_row(r).total for r in rows} == {Decimal("10000000000000000008.25")}
    assert len(rows) == 3  # day, hour, minute
