"""One contract suite for the metering store: memory fake, SQLite and PostgreSQL give the same answers.

Hypothesis drives random events, meters and queries; every answer must equal an independent
reference over the raw events (tests/support/reference_meter.py: its own window arithmetic and number
parsing, no helper shared with the stores or tollway.metering.aggregation). Explicit examples put
events on the query's edges so an off-by-one at a window boundary fails on every run.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from tests.support.databases import BACKENDS, database_url, migrated_engine
from tests.support.reference_meter import reference_rows
from tollway.adapters.memory.store import MemoryEventStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.errors import ConflictError
from tollway.metering.aggregation import MeterQuery, parse_zone
from tollway.metering.events import Event
from tollway.metering.meters import Aggregation, Meter, WindowSize
from tollway.metering.ports import EventFilter
from tollway.metering.service import MeteringService, Store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BASE = datetime(2026, 3, 1, tzinfo=UTC)  # spans both DST changes of 2026
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    clock = FrozenClock(NOW)
    if request.param == "memory":
        yield MemoryEventStore(clock)
        return
    url = database_url(request, tmp_path, "contract.db")
    engine = await migrated_engine(url)
    sql = SqlEventStore(engine, clock)
    yield sql
    await sql.close()


def service_for(store: Store) -> MeteringService:
    return MeteringService(store, FrozenClock(NOW))


def ev(n: int, *, subject: str = "acme", minutes: float = 0, data: dict[str, object] | None = None) -> Event:
    return Event(
        id=f"e{n}",
        source="test",
        type="api.call",
        subject=subject,
        time=BASE + timedelta(minutes=minutes),
        data=data if data is not None else {"value": n, "kind": "a"},
    )


async def test_dedup_on_source_and_id_and_conflicts_are_counted(store: Store) -> None:
    service = service_for(store)
    await service.sync_meters([])
    first = ev(1)
    assert await store.insert_events([first, ev(2)]) == 2
    assert await store.insert_events([first, ev(2)]) == 0
    changed = replace(first, data={"value": 99, "kind": "a"})
    assert await store.insert_events([changed]) == 0
    assert store.stats.conflicts_total == 1
    assert store.stats.duplicates_total == 2
    other_source = replace(first, source="elsewhere")
    assert await store.insert_events([other_source]) == 1


async def test_within_batch_duplicates_keep_the_first(store: Store) -> None:
    service = service_for(store)
    await service.sync_meters([Meter("calls", "api.call", Aggregation.SUM, "$.value", managed_by="config")])
    dup = replace(ev(1), data={"value": 50, "kind": "a"})
    assert await store.insert_events([ev(1), dup]) == 1
    rows = await service.query("calls", MeterQuery())
    assert [r.value for r in rows] == [Decimal(1)]
    assert store.stats.conflicts_total == 1


async def test_meter_lifecycle_and_backfill(store: Store) -> None:
    service = service_for(store)
    await service.sync_meters([])
    await store.insert_events([ev(i, minutes=i) for i in range(1, 6)])
    await store.roll_up()
    created = await service.create_meter(Meter("calls_sum", "api.call", Aggregation.SUM, "$.value"))
    assert created.managed_by == "api"
    rows = await service.query("calls_sum", MeterQuery())
    assert [r.value for r in rows] == [Decimal(15)]  # events stored before the meter was created count
    with pytest.raises(ConflictError):
        await service.create_meter(Meter("calls_sum", "api.call", Aggregation.COUNT))
    with pytest.raises(ConflictError):
        await service.delete_meter("llm_tokens")
    await service.delete_meter("calls_sum")
    assert "calls_sum" not in {m.slug for m in await service.meters()}


async def test_subjects_created_on_first_sight(store: Store) -> None:
    await store.insert_events([ev(1, subject="b"), ev(2, subject="a"), ev(3, subject="a")])
    assert [s.key for s in await store.list_subjects()] == ["a", "b"]


async def test_subjects_are_read_a_page_at_a_time_counted_and_found_by_key(store: Store) -> None:
    await store.insert_events([ev(n, subject=key) for n, key in enumerate(["d", "b", "e", "a", "c"])])
    assert [s.key for s in await store.list_subjects(0, 2)] == ["a", "b"]
    assert [s.key for s in await store.list_subjects(2, 2)] == ["c", "d"]
    assert [s.key for s in await store.list_subjects(4, 2)] == ["e"]
    assert await store.list_subjects(6, 2) == []
    assert [s.key for s in await store.list_subjects(3)] == ["d", "e"]
    assert await store.count_subjects() == 5
    found = await store.get_subject("c")
    assert found is not None
    assert (found.key, found.first_seen) == ("c", NOW)
    assert await store.get_subject("zz") is None


async def test_events_are_listed_newest_first_with_openmeters_filters(store: Store) -> None:
    other = replace(ev(9, subject="globex", minutes=5), type="llm.tokens", data={"tokens": 3})
    await store.insert_events([ev(1, minutes=0), ev(2, minutes=10), other, ev(3, subject="Zoë Doe", minutes=10)])
    listed = await store.list_events(EventFilter())
    # by event time, newest first; two at the same time: the later ingested first; every type
    assert [(row.event.id, row.event.type) for row in listed] == [
        ("e3", "api.call"),
        ("e2", "api.call"),
        ("e9", "llm.tokens"),
        ("e1", "api.call"),
    ]
    assert listed[0].event == ev(3, subject="Zoë Doe", minutes=10)
    assert {row.ingested_at for row in listed} == {NOW}
    assert [r.event.id for r in await store.list_events(EventFilter(limit=2))] == ["e3", "e2"]
    window = EventFilter(start=BASE + timedelta(minutes=5), end=BASE + timedelta(minutes=10))
    assert [r.event.id for r in await store.list_events(window)] == ["e9"]  # start inclusive, end exclusive
    assert [r.event.id for r in await store.list_events(EventFilter(subjects=("Zoë Doe",)))] == ["e3"]
    assert [r.event.id for r in await store.list_events(EventFilter(event_id="e2"))] == ["e2"]
    assert await store.list_events(EventFilter(ingested_from=NOW + timedelta(seconds=1))) == []
    assert len(await store.list_events(EventFilter(ingested_from=NOW, ingested_to=NOW))) == 4  # both inclusive


async def test_missing_and_non_numeric_values_are_skipped_and_counted(store: Store) -> None:
    service = service_for(store)
    await service.sync_meters([Meter("calls", "api.call", Aggregation.SUM, "$.value", managed_by="config")])
    await store.insert_events(
        [ev(1, data={"value": "2.5"}), ev(2, data={}), ev(3, data={"value": "lots"}), ev(4, data={"value": 3})]
    )
    await store.roll_up()
    rows = await service.query("calls", MeterQuery())
    assert [r.value for r in rows] == [Decimal("5.5")]
    assert store.stats.skipped_values_total == 2


async def test_config_meter_definition_change_rebuilds_rollups(store: Store) -> None:
    service = service_for(store)
    await service.sync_meters([Meter("calls", "api.call", Aggregation.SUM, "$.value", managed_by="config")])
    await store.insert_events([ev(1), ev(2)])
    await store.roll_up()
    await service.sync_meters([Meter("calls", "api.call", Aggregation.MAX, "$.value", managed_by="config")])
    assert [r.value for r in await service.query("calls", MeterQuery())] == [Decimal(2)]
    await service.sync_meters([])
    assert "calls" not in {m.slug for m in await service.meters()}


def llm_event(n: int, model: str, kind: str, tokens: int) -> Event:
    return Event(
        id=f"t{n}",
        source="test",
        type="api.tokens",
        subject="acme",
        time=BASE + timedelta(minutes=n),
        data={"model": model, "type": kind, "tokens": tokens},
    )


@pytest.mark.parametrize("how", ["api", "config"])
async def test_backfill_with_group_by_out_of_alphabetical_order_keeps_names(store: Store, how: str) -> None:
    """A meter created over stored events, its groupBy not in alphabetical order: the backfilled
    buckets and those folded after the creation carry the same, right names."""
    service = service_for(store)
    await service.sync_meters([])
    await store.insert_events([llm_event(1, "gpt-4o", "input", 800), llm_event(2, "gpt-4o", "output", 30)])
    await store.roll_up()
    meter = Meter(
        "tokens",
        "api.tokens",
        Aggregation.SUM,
        "$.tokens",
        group_by={"type": "$.type", "model": "$.model"},
        managed_by=how,
    )
    if how == "api":
        await service.create_meter(meter)
    else:
        await service.sync_meters([meter])
    await store.insert_events([llm_event(3, "gpt-4o", "input", 200)])
    await store.roll_up()
    for rolled in (False, True):  # the later event raw, then folded
        rows = await service.query("tokens", MeterQuery(group_by=("type", "model")))
        assert sorted((r.group_by["type"], r.group_by["model"], r.value) for r in rows) == [
            ("input", "gpt-4o", Decimal(1000)),
            ("output", "gpt-4o", Decimal(30)),
        ]
        filtered = await service.query("tokens", MeterQuery(filter_group_by={"type": ("input",)}))
        assert [r.value for r in filtered] == [Decimal(1000)]
        if not rolled:
            await store.roll_up()


# Events around a range starting and ending mid-hour and mid-minute, [03-02 22:58:10, 03-05 01:02:30):
# the plan reads raw seconds, minute, hour and day buckets at each edge; values are powers of two so
# each event's presence shows in the sum.
SPLIT_START = datetime(2026, 3, 2, 22, 58, 10, tzinfo=UTC)
SPLIT_END = datetime(2026, 3, 5, 1, 2, 30, tzinfo=UTC)
SPLIT_EVENTS = [
    (datetime(2026, 3, 2, 22, 58, 9, tzinfo=UTC), 1),  # before `from`
    (datetime(2026, 3, 2, 22, 58, 10, tzinfo=UTC), 2),  # raw edge
    (datetime(2026, 3, 2, 22, 58, 50, tzinfo=UTC), 4),  # raw edge
    (datetime(2026, 3, 2, 22, 59, 0, tzinfo=UTC), 8),  # minute bucket
    (datetime(2026, 3, 2, 23, 30, 0, tzinfo=UTC), 16),  # hour bucket
    (datetime(2026, 3, 3, 12, 0, 0, tzinfo=UTC), 32),  # day bucket
    (datetime(2026, 3, 4, 23, 59, 59, tzinfo=UTC), 64),  # day bucket
    (datetime(2026, 3, 5, 0, 59, 59, tzinfo=UTC), 128),  # hour bucket
    (datetime(2026, 3, 5, 1, 1, 59, tzinfo=UTC), 256),  # minute bucket
    (datetime(2026, 3, 5, 1, 2, 29, 999999, tzinfo=UTC), 512),  # raw edge
    (datetime(2026, 3, 5, 1, 2, 30, tzinfo=UTC), 1024),  # `to`: excluded
    (datetime(2026, 3, 5, 2, 0, 0, tzinfo=UTC), 2048),  # after
]


@pytest.mark.parametrize("rolled", [0, 5, len(SPLIT_EVENTS)])
async def test_range_with_mid_hour_and_mid_minute_edges(store: Store, rolled: int) -> None:
    service = service_for(store)
    await service.sync_meters([Meter("calls", "api.call", Aggregation.SUM, "$.value", managed_by="config")])
    found = [
        Event(id=f"s{n}", source="test", type="api.call", subject="acme", time=at, data={"value": value})
        for n, (at, value) in enumerate(SPLIT_EVENTS)
    ]
    await store.insert_events(found[:rolled])
    await store.roll_up()
    await store.insert_events(found[rolled:])  # past the watermark: read raw
    whole = await service.query("calls", MeterQuery(start=SPLIT_START, end=SPLIT_END))
    assert [r.value for r in whole] == [Decimal(2 + 4 + 8 + 16 + 32 + 64 + 128 + 256 + 512)]
    daily = await service.query("calls", MeterQuery(start=SPLIT_START, end=SPLIT_END, window_size=WindowSize.DAY))
    assert [(r.window_start.day, r.value) for r in daily] == [
        (2, Decimal(2 + 4 + 8 + 16)),
        (3, Decimal(32)),
        (4, Decimal(64)),
        (5, Decimal(128 + 256 + 512)),
    ]
    hourly = await service.query("calls", MeterQuery(start=SPLIT_START, end=SPLIT_END, window_size=WindowSize.HOUR))
    assert [r.value for r in hourly] == [Decimal(v) for v in (2 + 4 + 8, 16, 32, 64, 128, 256 + 512)]
    # Month so far from the first, ending mid-hour: days, then hours, then minutes, then raw seconds.
    month = await service.query(
        "calls", MeterQuery(start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 3, 5, 1, 1, 59, tzinfo=UTC))
    )
    assert [r.value for r in month] == [Decimal(1 + 2 + 4 + 8 + 16 + 32 + 64 + 128)]


async def test_many_subjects_and_zoned_windows_in_one_read(store: Store) -> None:
    # 30 subjects x 12 Kolkata days (about 25 bucket segments): more SELECTs than SQLite's compound limit
    # if each segment and subject were its own; the store must still answer in one read.
    service = service_for(store)
    await service.sync_meters([Meter("calls", "api.call", Aggregation.SUM, "$.value", managed_by="config")])
    subjects = [f"s{n:02d}" for n in range(30)]
    start = datetime(2026, 3, 1, 18, 30, tzinfo=UTC)  # 2026-03-02 00:00 in Kolkata (+05:30)
    found = [
        Event(
            id=f"k{n}-{day}",
            source="test",
            type="api.call",
            subject=subject,
            time=start + timedelta(days=day, hours=6),
            data={"value": 1},
        )
        for n, subject in enumerate(subjects)
        for day in range(12)
    ]
    await store.insert_events(found)
    await store.roll_up()
    query = MeterQuery(
        start=start,
        end=start + timedelta(days=12),
        window_size=WindowSize.DAY,
        window_tz=parse_zone("Asia/Kolkata"),
        subjects=tuple(subjects),
    )
    rows = await service.query("calls", query)
    per_day: dict[datetime, Decimal] = {}
    for row in rows:  # one row per subject and window
        per_day[row.window_start] = per_day.get(row.window_start, Decimal(0)) + row.value
    assert len(rows) == 30 * 12
    assert per_day == {start + timedelta(days=day): Decimal(30) for day in range(12)}


# -- properties: rollup answers equal the reference over raw events --------------------------------

event_strategy = st.builds(
    lambda minute, second, subject, kind, value, tag: (minute, second, subject, kind, value, tag),
    st.integers(min_value=0, max_value=60 * 24 * 70),
    st.integers(min_value=0, max_value=59),
    st.sampled_from(["acme", "globex", "initech"]),
    st.sampled_from(["a", "b", None]),
    st.one_of(
        st.integers(min_value=-1000, max_value=10**6),
        st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False, allow_infinity=False).map(str),
        st.none(),
        st.just("n/a"),
    ),
    st.sampled_from(["x", "y", "z", "w"]),
)

query_strategy = st.fixed_dictionaries(
    {
        "aggregation": st.sampled_from(list(Aggregation)),
        "window": st.sampled_from([None, *WindowSize]),
        "zone": st.sampled_from(ZONES),
        "start": st.one_of(st.none(), st.integers(min_value=-60, max_value=60 * 24 * 40)),
        "length": st.one_of(st.none(), st.integers(min_value=1, max_value=60 * 24 * 45)),
        "start_seconds": st.sampled_from([0, 0, 17]),
        "group_by": st.sampled_from([(), ("kind",), ("subject",), ("subject", "kind")]),
        "subjects": st.sampled_from([None, ("acme",), ("acme", "globex")]),
        "filter": st.sampled_from([{}, {"kind": ("a",)}]),
        "roll_all": st.booleans(),
    }
)


def edge_spec(window: WindowSize | None, zone: str, start: int, length: int) -> dict[str, object]:
    return {
        "aggregation": Aggregation.SUM,
        "window": window,
        "zone": zone,
        "start": start,
        "length": length,
        "start_seconds": 0,
        "group_by": (),
        "subjects": None,
        "filter": {},
        "roll_all": True,
    }


# Events 1 s before, on and 5 s after both edges of [BASE + 1 h, BASE + 2 h) (values 1..32: each edge
# event changes the sum), all folded into rollups: an end bucket read with <= (or a start with >) fails.
EDGE_EVENTS = [
    (59, 59, "acme", "a", 1, "x"),
    (60, 0, "acme", "a", 2, "x"),
    (60, 5, "acme", "a", 4, "x"),
    (119, 59, "acme", "a", 8, "x"),
    (120, 0, "acme", "a", 16, "x"),
    (120, 5, "acme", "a", 32, "x"),
]
EDGE_EXAMPLES = [
    (EDGE_EVENTS, edge_spec(None, "UTC", 60, 60)),
    (EDGE_EVENTS, edge_spec(WindowSize.MINUTE, "UTC", 60, 60)),
    (EDGE_EVENTS, edge_spec(WindowSize.HOUR, "UTC", 60, 60)),
    (EDGE_EVENTS, edge_spec(WindowSize.HOUR, "Asia/Kathmandu", 60, 60)),
    (EDGE_EVENTS, edge_spec(WindowSize.DAY, "America/New_York", 60, 60)),
]


def with_edge_examples(test: Callable[..., None]) -> Callable[..., None]:
    for raw, spec in EDGE_EXAMPLES:
        test = example(raw=raw, spec=spec)(test)
    return test


def build_events(raw: list[tuple[int, int, str, str | None, object, str]]) -> list[Event]:
    found = []
    for n, (minute, second, subject, kind, value, tag) in enumerate(raw):
        data: dict[str, object] = {"tag": tag}
        if kind is not None:
            data["kind"] = kind
        if value is not None:
            data["value"] = value
        found.append(
            Event(
                id=f"p{n}",
                source="prop",
                type="api.call",
                subject=subject,
                time=BASE + timedelta(minutes=minute, seconds=second),
                data=data,
            )
        )
    return found


def make_query(spec: dict[str, object]) -> MeterQuery:
    start: datetime | None = None
    end: datetime | None = None
    start_minute, start_seconds, length = spec["start"], spec["start_seconds"], spec["length"]
    if isinstance(start_minute, int) and isinstance(start_seconds, int):
        start = BASE + timedelta(minutes=start_minute, seconds=start_seconds)
    if isinstance(length, int):
        end = (start or BASE) + timedelta(minutes=length)
    window = spec["window"]
    assert window is None or isinstance(window, WindowSize)
    return MeterQuery(
        start=start,
        end=end,
        window_size=window,
        window_tz=parse_zone(str(spec["zone"])),
        subjects=spec["subjects"],  # type: ignore[arg-type]
        group_by=spec["group_by"],  # type: ignore[arg-type]
        filter_group_by=spec["filter"],  # type: ignore[arg-type]
    )


def check_against_reference(
    store_factory: Callable[[], Store],
    raw: list[tuple[int, int, str, str | None, object, str]],
    spec: dict[str, object],
) -> None:
    aggregation = spec["aggregation"]
    assert isinstance(aggregation, Aggregation)
    value_property = "$.tag" if aggregation is Aggregation.UNIQUE_COUNT else "$.value"
    meter = Meter("prop", "api.call", aggregation, value_property, {"kind": "$.kind"}, managed_by="config")
    events = build_events(raw)
    query = make_query(spec)

    async def run() -> None:
        store = store_factory()
        service = service_for(store)
        await service.sync_meters([meter])
        half = len(events) // 2
        await store.insert_events(events[:half])
        await store.roll_up()  # part in rollups, part past the watermark (read raw)
        await store.insert_events(events[half:])
        if spec["roll_all"]:
            await store.roll_up(limit=7)
            await store.roll_up()
        got = await service.query("prop", query)
        await store.close()
        expected = reference_rows(meter, query, events, now=NOW)
        assert got == expected

    asyncio.run(run())


@settings(max_examples=150, deadline=None)
@given(st.lists(event_strategy, max_size=40), query_strategy)
@with_edge_examples
def test_rollup_queries_equal_reference_memory(
    raw: list[tuple[int, int, str, str | None, object, str]], spec: dict[str, object]
) -> None:
    check_against_reference(lambda: MemoryEventStore(FrozenClock(NOW)), raw, spec)


# The SQL property tests migrate once per test, not once per example (the migrations are not what they check,
# and running them was two thirds of their time): SQLite examples each start from a copy of a migrated file,
# PostgreSQL examples empty the tables of the one migrated schema.


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> Path:
    """A SQLite file with every migration applied, to copy (its engine closed)."""
    path = tmp_path / "migrated.db"
    engine = create_sql_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def fresh_copy(template: Path, path: Path) -> None:
    """`path` becomes a copy of the SQLite database `template` (SQLite's backup API: WAL content included)."""
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(path)) as target:
        source.backup(target)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(event_strategy, max_size=30), query_strategy)
@with_edge_examples
def test_rollup_queries_equal_reference_sqlite(
    tmp_path: Path,
    migrated_sqlite: Path,
    raw: list[tuple[int, int, str, str | None, object, str]],
    spec: dict[str, object],
) -> None:
    path = tmp_path / "prop.db"
    fresh_copy(migrated_sqlite, path)
    engine = create_sql_engine(f"sqlite:///{path}")
    try:
        check_against_reference(lambda: SqlEventStore(engine, FrozenClock(NOW)), raw, spec)
    finally:
        engine.dispose()


@pytest.fixture
def migrated_postgres(postgres_url: str) -> Iterator[Engine]:
    engine = create_sql_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(event_strategy, max_size=30), query_strategy)
@with_edge_examples
def test_rollup_queries_equal_reference_postgres(
    migrated_postgres: Engine, raw: list[tuple[int, int, str, str | None, object, str]], spec: dict[str, object]
) -> None:
    engine = migrated_postgres
    with engine.begin() as connection:
        for table in ("meter_rollup_values", "meter_rollups", "meters", "subjects", "events"):
            connection.exec_driver_sql(f"DELETE FROM {table}")
    check_against_reference(lambda: SqlEventStore(engine, FrozenClock(NOW)), raw, spec)
