from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tollway.metering.aggregation import MeterQuery, aggregate, numeric_value, window_bounds
from tollway.metering.events import Event
from tollway.metering.meters import Aggregation, Meter, WindowSize

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def ev(n: int, when: datetime, value: object, subject: str = "a", **data: object) -> Event:
    return Event(id=str(n), source="s", type="t", subject=subject, time=when, data={"v": value, **data})


def meter(aggregation: Aggregation) -> Meter:
    return Meter(
        slug="m",
        event_type="t",
        aggregation=aggregation,
        value_property=None if aggregation is Aggregation.COUNT else "$.v",
        group_by={"model": "$.model"},
    )


def test_day_windows_follow_dst_in_the_zone() -> None:
    # 2026-10-25: Paris goes from UTC+2 to UTC+1, so that local day is 25 hours long.
    start, end = window_bounds(datetime(2026, 10, 25, 12, tzinfo=UTC), WindowSize.DAY, PARIS)
    assert start == datetime(2026, 10, 24, 22, tzinfo=UTC)
    assert end == datetime(2026, 10, 25, 23, tzinfo=UTC)
    assert end - start == timedelta(hours=25)


def test_month_window_in_zone() -> None:
    start, end = window_bounds(datetime(2026, 3, 31, 23, 30, tzinfo=UTC), WindowSize.MONTH, PARIS)
    assert start == datetime(2026, 3, 31, 22, tzinfo=UTC)  # 1 April 00:00 CEST
    assert end == datetime(2026, 4, 30, 22, tzinfo=UTC)


def test_hour_window_in_half_hour_zone() -> None:
    start, end = window_bounds(datetime(2026, 1, 1, 10, 10, tzinfo=UTC), WindowSize.HOUR, ZoneInfo("Asia/Kolkata"))
    assert start == datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    assert end == datetime(2026, 1, 1, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        (Aggregation.SUM, Decimal("6.5")),
        (Aggregation.COUNT, Decimal(4)),
        (Aggregation.AVG, Decimal("6.5") / 3),
        (Aggregation.MIN, Decimal("1.5")),
        (Aggregation.MAX, Decimal(3)),
        (Aggregation.UNIQUE_COUNT, Decimal(3)),
        (Aggregation.LATEST, Decimal(2)),
    ],
)
def test_aggregations_and_the_missing_value_rule(aggregation: Aggregation, expected: Decimal) -> None:
    t = datetime(2026, 11, 1, tzinfo=UTC)
    events = [
        ev(1, t, 3),
        ev(2, t + timedelta(seconds=1), "1.5"),
        ev(3, t + timedelta(seconds=2), "n/a"),
        ev(4, t + timedelta(seconds=3), 2),
    ]
    if aggregation is Aggregation.UNIQUE_COUNT:
        expected = Decimal(4)  # every value is a distinct string, "n/a" included
    (row,) = aggregate(meter(aggregation), MeterQuery(), events, now=NOW)
    assert row.value == expected


def test_range_is_half_open_and_groups_split() -> None:
    t = datetime(2026, 11, 1, tzinfo=UTC)
    events = [ev(1, t, 1, model="x"), ev(2, t + timedelta(hours=1), 2, model="y"), ev(3, t + timedelta(hours=2), 4)]
    rows = aggregate(
        meter(Aggregation.SUM), MeterQuery(start=t, end=t + timedelta(hours=2), group_by=("model",)), events, now=NOW
    )
    assert [(r.group_by["model"], r.value) for r in rows] == [("x", Decimal(1)), ("y", Decimal(2))]
    assert rows[0].window_start == t
    assert rows[0].window_end == t + timedelta(hours=2)


def test_windowed_subject_rows() -> None:
    t = datetime(2026, 11, 1, 10, tzinfo=UTC)
    events = [ev(1, t, 1, subject="a"), ev(2, t + timedelta(minutes=90), 2, subject="b"), ev(3, t, 5, subject="b")]
    rows = aggregate(
        meter(Aggregation.SUM), MeterQuery(window_size=WindowSize.HOUR, group_by=("subject",)), events, now=NOW
    )
    assert [(r.window_start.hour, r.subject, r.value) for r in rows] == [
        (10, "a", Decimal(1)),
        (10, "b", Decimal(5)),
        (11, "b", Decimal(2)),
    ]


def test_numeric_value_rules() -> None:
    assert numeric_value(3) == Decimal(3)
    assert numeric_value("2.50") == Decimal("2.50")
    assert numeric_value(True) is None
    assert numeric_value("NaN") is None
    assert numeric_value({"a": 1}) is None
