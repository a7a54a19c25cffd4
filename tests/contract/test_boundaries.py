"""Query edges, deterministically, on the memory fake, SQLite and PostgreSQL: `from` is inclusive, `to` exclusive.

Six events sit 1 µs before, on and 5 s after both edges of the query (values 1, 2, 4, 8, 16, 32, so
every event changes the sum); the query's `to` falls on a minute, hour, day and month boundary in
UTC, in New York across both DST changes, and in Kathmandu (+05:45). Each case is asked before the
rollup (raw events) and after it (rollup buckets), windowed and not. Expected rows are literals
worked out by hand: the first window holds the events at `from` and `from + 5 s` (2 + 4 = 6), the
last one the event at `to - 1 µs` (8), the whole range 2 + 4 + 8 = 14.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.databases import BACKENDS, database_url, migrated_engine
from tollway.adapters.memory.store import MemoryEventStore
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.metering.aggregation import MeterQuery, QueryRow, parse_zone
from tollway.metering.events import Event
from tollway.metering.meters import Aggregation, Meter, WindowSize
from tollway.metering.service import MeteringService, Store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
FIVE_S = timedelta(seconds=5)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    name: str
    zone: str
    size: WindowSize
    start: datetime
    end: datetime
    middle: datetime  # the boundary between the two windows of [start, end)


CASES = [
    Case(
        "utc-minute",
        "UTC",
        WindowSize.MINUTE,
        utc(2026, 3, 10, 12, 0),
        utc(2026, 3, 10, 12, 2),
        utc(2026, 3, 10, 12, 1),
    ),
    Case("utc-hour", "UTC", WindowSize.HOUR, utc(2026, 3, 10, 10), utc(2026, 3, 10, 12), utc(2026, 3, 10, 11)),
    Case("utc-day", "UTC", WindowSize.DAY, utc(2026, 3, 9), utc(2026, 3, 11), utc(2026, 3, 10)),
    Case("utc-month", "UTC", WindowSize.MONTH, utc(2026, 2, 1), utc(2026, 4, 1), utc(2026, 3, 1)),
    # New York, 2026-11-01: 01:00 EDT (05:00Z) and 01:00 EST (06:00Z) are two hours that read the same
    Case(
        "ny-minute",
        "America/New_York",
        WindowSize.MINUTE,
        utc(2026, 11, 1, 5, 59),
        utc(2026, 11, 1, 6, 1),
        utc(2026, 11, 1, 6),
    ),
    Case(
        "ny-hour-fall",
        "America/New_York",
        WindowSize.HOUR,
        utc(2026, 11, 1, 5),
        utc(2026, 11, 1, 7),
        utc(2026, 11, 1, 6),
    ),
    # New York, 2026-03-08: 00:00 EST (05:00Z) to 03:00 EDT (07:00Z) is two hours, 02:00 never happens
    Case(
        "ny-hour-spring",
        "America/New_York",
        WindowSize.HOUR,
        utc(2026, 3, 8, 5),
        utc(2026, 3, 8, 7),
        utc(2026, 3, 8, 6),
    ),
    # March 8 is a 23-hour day: 05:00Z to 04:00Z next day
    Case("ny-day", "America/New_York", WindowSize.DAY, utc(2026, 3, 8, 5), utc(2026, 3, 10, 4), utc(2026, 3, 9, 4)),
    Case("ny-month", "America/New_York", WindowSize.MONTH, utc(2026, 2, 1, 5), utc(2026, 4, 1, 4), utc(2026, 3, 1, 5)),
    Case(
        "npt-minute",
        "Asia/Kathmandu",
        WindowSize.MINUTE,
        utc(2026, 3, 10, 6, 15),
        utc(2026, 3, 10, 6, 17),
        utc(2026, 3, 10, 6, 16),
    ),
    # Kathmandu is UTC+05:45: its hours start at :15 UTC, its days at 18:15Z the day before
    Case(
        "npt-hour",
        "Asia/Kathmandu",
        WindowSize.HOUR,
        utc(2026, 3, 10, 6, 15),
        utc(2026, 3, 10, 8, 15),
        utc(2026, 3, 10, 7, 15),
    ),
    Case(
        "npt-day",
        "Asia/Kathmandu",
        WindowSize.DAY,
        utc(2026, 3, 9, 18, 15),
        utc(2026, 3, 11, 18, 15),
        utc(2026, 3, 10, 18, 15),
    ),
    Case(
        "npt-month",
        "Asia/Kathmandu",
        WindowSize.MONTH,
        utc(2026, 1, 31, 18, 15),
        utc(2026, 3, 31, 18, 15),
        utc(2026, 2, 28, 18, 15),
    ),
]


def meter(case: Case) -> Meter:
    return Meter(case.name, f"edge.{case.name}", Aggregation.SUM, "$.value", managed_by="config")


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    clock = FrozenClock(NOW)
    if request.param == "memory":
        yield MemoryEventStore(clock)
        return
    url = database_url(request, tmp_path, "edges.db")
    engine = await migrated_engine(url)
    sql = SqlEventStore(engine, clock)
    yield sql
    await sql.close()


def edge_events(case: Case) -> list[Event]:
    times = [case.start - US, case.start, case.start + FIVE_S, case.end - US, case.end, case.end + FIVE_S]
    return [
        Event(
            id=f"{case.name}-{n}",
            source="edges",
            type=f"edge.{case.name}",
            subject="acme",
            time=t,
            data={"value": 2**n},
        )
        for n, t in enumerate(times)
    ]


def row(value: int, start: datetime, end: datetime) -> QueryRow:
    return QueryRow(value=Decimal(value), window_start=start, window_end=end, subject=None, group_by={})


async def answers(service: MeteringService, case: Case) -> dict[str, list[QueryRow]]:
    zone = parse_zone(case.zone)
    return {
        "whole": await service.query(case.name, MeterQuery(start=case.start, end=case.end, window_tz=zone)),
        "windowed": await service.query(
            case.name, MeterQuery(start=case.start, end=case.end, window_size=case.size, window_tz=zone)
        ),
        "to only": await service.query(case.name, MeterQuery(end=case.end, window_tz=zone)),
        "from only": await service.query(case.name, MeterQuery(start=case.start, window_tz=zone)),
    }


def expected(case: Case) -> dict[str, list[QueryRow]]:
    return {
        "whole": [row(2 + 4 + 8, case.start, case.end)],
        "windowed": [row(2 + 4, case.start, case.middle), row(8, case.middle, case.end)],
        # no `from`: the range starts at the earliest event counted (1 µs before case.start)
        "to only": [row(1 + 2 + 4 + 8, case.start - US, case.end)],
        "from only": [row(2 + 4 + 8 + 16 + 32, case.start, NOW)],
    }


async def test_edges_before_and_after_rollup(store: Store) -> None:
    """Every case on one store (one meter and event type each): asked on raw events, then on rollups."""
    service = MeteringService(store, FrozenClock(NOW))
    await service.sync_meters([meter(case) for case in CASES])
    assert await store.insert_events([e for case in CASES for e in edge_events(case)]) == 6 * len(CASES)
    for case in CASES:
        assert await answers(service, case) == expected(case), case.name  # raw events, nothing rolled up
    await store.roll_up()
    for case in CASES:
        assert await answers(service, case) == expected(case), case.name  # the same from rollup buckets
