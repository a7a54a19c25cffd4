"""The rollup query planner: which bucket level answers a query, and which edges are read raw."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tollway.metering.aggregation import MeterQuery, parse_zone, window_bounds
from tollway.metering.events import to_micros
from tollway.metering.meters import WindowSize
from tollway.metering.query import plan_query
from tollway.metering.rollup import DAY_US, HOUR_US, MINUTE_US

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
SPAN = (to_micros(OCT), to_micros(NOV))


def us(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return to_micros(datetime(year, month, day, hour, minute, tzinfo=UTC))


def levels_of(window: WindowSize | None, zone: str, start: datetime | None, end: datetime | None) -> list[int]:
    query = MeterQuery(start=start, end=end, window_size=window, window_tz=parse_zone(zone))
    return [segment.level_us for segment in plan_query(query, SPAN).segments]


@pytest.mark.parametrize(
    ("window", "zone", "start", "end", "levels"),
    [
        (None, "UTC", OCT, NOV, [DAY_US]),
        (WindowSize.MONTH, "UTC", OCT, NOV, [DAY_US]),
        (WindowSize.DAY, "UTC", OCT, NOV, [DAY_US]),
        (WindowSize.HOUR, "UTC", OCT, NOV, [HOUR_US]),
        (WindowSize.MINUTE, "UTC", OCT, NOV, [MINUTE_US]),
        # New York days start at 04:00 or 05:00 UTC: no UTC day lies inside one, hours only.
        (
            WindowSize.DAY,
            "America/New_York",
            datetime(2026, 10, 2, 4, tzinfo=UTC),
            datetime(2026, 10, 4, 4, tzinfo=UTC),
            [HOUR_US],
        ),
        # A New York month: hours up to the first UTC midnight and after the last, days between.
        (
            WindowSize.MONTH,
            "America/New_York",
            datetime(2026, 10, 1, 4, tzinfo=UTC),
            datetime(2026, 11, 1, 4, tzinfo=UTC),
            [HOUR_US, DAY_US, HOUR_US],
        ),
        # Kolkata is UTC+05:30: its day 2026-10-02 is [10-01 18:30, 10-02 18:30) UTC.
        (
            WindowSize.DAY,
            "Asia/Kolkata",
            datetime(2026, 10, 1, 18, 30, tzinfo=UTC),
            datetime(2026, 10, 2, 18, 30, tzinfo=UTC),
            [MINUTE_US, HOUR_US, MINUTE_US],
        ),
        (None, "UTC", datetime(2026, 10, 1, 10, tzinfo=UTC), NOV, [HOUR_US, DAY_US]),
    ],
)
def test_levels_of_the_segments(
    window: WindowSize | None, zone: str, start: datetime | None, end: datetime | None, levels: list[int]
) -> None:
    assert levels_of(window, zone, start, end) == levels


def test_month_so_far_ending_mid_hour_reads_days_then_hours_then_minutes() -> None:
    end = datetime(2026, 10, 24, 15, 30, tzinfo=UTC)
    plan = plan_query(MeterQuery(start=OCT, end=end), SPAN)
    assert [(s.level_us, s.start_us, s.end_us) for s in plan.segments] == [
        (DAY_US, us(2026, 10, 1), us(2026, 10, 24)),
        (HOUR_US, us(2026, 10, 24), us(2026, 10, 24, 15)),
        (MINUTE_US, us(2026, 10, 24, 15), us(2026, 10, 24, 15, 30)),
    ]
    assert plan.level_us == DAY_US
    assert plan.raw_ranges == ()


def test_range_starting_and_ending_mid_hour_mid_minute() -> None:
    start = datetime(2026, 10, 3, 22, 58, 10, tzinfo=UTC)
    end = datetime(2026, 10, 6, 1, 2, 30, tzinfo=UTC)
    plan = plan_query(MeterQuery(start=start, end=end), SPAN)
    assert [(s.level_us, s.start_us, s.end_us) for s in plan.segments] == [
        (MINUTE_US, us(2026, 10, 3, 22, 59), us(2026, 10, 3, 23)),
        (HOUR_US, us(2026, 10, 3, 23), us(2026, 10, 4)),
        (DAY_US, us(2026, 10, 4), us(2026, 10, 6)),
        (HOUR_US, us(2026, 10, 6), us(2026, 10, 6, 1)),
        (MINUTE_US, us(2026, 10, 6, 1), us(2026, 10, 6, 1, 2)),
    ]
    assert plan.raw_ranges == (
        (start, datetime(2026, 10, 3, 22, 59, tzinfo=UTC)),
        (datetime(2026, 10, 6, 1, 2, tzinfo=UTC), end),
    )


def test_hour_windows_never_read_day_buckets() -> None:
    end = datetime(2026, 10, 3, 5, 7, tzinfo=UTC)
    plan = plan_query(MeterQuery(start=OCT, end=end, window_size=WindowSize.HOUR), SPAN)
    assert [(s.level_us, s.start_us, s.end_us) for s in plan.segments] == [
        (HOUR_US, us(2026, 10, 1), us(2026, 10, 3, 5)),
        (MINUTE_US, us(2026, 10, 3, 5), us(2026, 10, 3, 5, 7)),
    ]


def test_unbounded_start() -> None:
    end = datetime(2026, 10, 3, 5, 7, tzinfo=UTC)
    plan = plan_query(MeterQuery(end=end), SPAN)
    assert [(s.level_us, s.start_us, s.end_us) for s in plan.segments] == [
        (DAY_US, None, us(2026, 10, 3)),
        (HOUR_US, us(2026, 10, 3), us(2026, 10, 3, 5)),
        (MINUTE_US, us(2026, 10, 3, 5), us(2026, 10, 3, 5, 7)),
    ]


def test_many_zoned_windows_fall_back_to_one_level() -> None:
    # 61 Kolkata days: 5 segments each would be over the limit; one minute level for the whole range.
    start = datetime(2026, 8, 31, 18, 30, tzinfo=UTC)
    plan = plan_query(
        MeterQuery(start=start, end=NOV, window_size=WindowSize.DAY, window_tz=parse_zone("Asia/Kolkata")), SPAN
    )
    assert [(s.level_us, s.start_us, s.end_us) for s in plan.segments] == [
        (MINUTE_US, to_micros(start), us(2026, 11, 1))
    ]


def test_sub_minute_edges_are_read_raw() -> None:
    start = datetime(2026, 10, 1, 0, 0, 17, tzinfo=UTC)
    end = datetime(2026, 10, 3, 0, 0, 5, tzinfo=UTC)
    plan = plan_query(MeterQuery(start=start, end=end), SPAN)
    assert plan.start_us == to_micros(datetime(2026, 10, 1, 0, 1, tzinfo=UTC))
    assert plan.raw_ranges == (
        (start, datetime(2026, 10, 1, 0, 1, tzinfo=UTC)),
        (datetime(2026, 10, 3, tzinfo=UTC), end),
    )


def test_a_range_inside_one_minute_is_all_raw() -> None:
    start = datetime(2026, 10, 1, 0, 0, 17, tzinfo=UTC)
    plan = plan_query(MeterQuery(start=start, end=start.replace(second=40)), SPAN)
    assert plan.level_us is None


def test_historical_second_offsets_fall_back_to_raw() -> None:
    # Amsterdam kept local mean time (+00:19:32) until 1937: day windows are not whole UTC minutes.
    start = datetime(1930, 1, 1, tzinfo=UTC)
    query = MeterQuery(
        start=start,
        end=datetime(1930, 1, 5, tzinfo=UTC),
        window_size=WindowSize.DAY,
        window_tz=parse_zone("Europe/Amsterdam"),
    )
    assert plan_query(query, (to_micros(start), to_micros(start) + 10 * DAY_US)).level_us is None


def test_dst_day_lengths() -> None:
    zone = parse_zone("Europe/Berlin")
    short_start, short_end = window_bounds(datetime(2026, 3, 29, 12, tzinfo=UTC), WindowSize.DAY, zone)
    long_start, long_end = window_bounds(datetime(2026, 10, 25, 12, tzinfo=UTC), WindowSize.DAY, zone)
    assert (short_end - short_start).total_seconds() == 23 * 3600
    assert (long_end - long_start).total_seconds() == 25 * 3600
