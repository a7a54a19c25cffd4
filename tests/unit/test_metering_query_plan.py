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


@pytest.mark.parametrize(
    ("window", "zone", "start", "end", "level"),
    [
        (None, "UTC", OCT, NOV, DAY_US),
        (WindowSize.MONTH, "UTC", OCT, NOV, DAY_US),
        (WindowSize.DAY, "UTC", OCT, NOV, DAY_US),
        (WindowSize.HOUR, "UTC", OCT, NOV, HOUR_US),
        (WindowSize.MINUTE, "UTC", OCT, NOV, MINUTE_US),
        # New York days start at 04:00 or 05:00 UTC: hour buckets.
        (
            WindowSize.DAY,
            "America/New_York",
            datetime(2026, 10, 1, 4, tzinfo=UTC),
            datetime(2026, 11, 2, 5, tzinfo=UTC),
            HOUR_US,
        ),
        # Kolkata is UTC+05:30, Kathmandu UTC+05:45: minute buckets.
        (WindowSize.DAY, "Asia/Kolkata", datetime(2026, 9, 30, 18, 30, tzinfo=UTC), NOV, MINUTE_US),
        (WindowSize.HOUR, "Asia/Kathmandu", None, None, MINUTE_US),
        (None, "UTC", datetime(2026, 10, 1, 10, tzinfo=UTC), NOV, HOUR_US),
    ],
)
def test_coarsest_aligned_level(
    window: WindowSize | None, zone: str, start: datetime | None, end: datetime | None, level: int
) -> None:
    plan = plan_query(MeterQuery(start=start, end=end, window_size=window, window_tz=parse_zone(zone)), SPAN)
    assert plan.level_us == level
    assert plan.raw_ranges == ()


def test_sub_minute_edges_are_read_raw() -> None:
    start = datetime(2026, 10, 1, 0, 0, 17, tzinfo=UTC)
    end = datetime(2026, 10, 3, 0, 0, 5, tzinfo=UTC)
    plan = plan_query(MeterQuery(start=start, end=end), SPAN)
    assert plan.level_us == MINUTE_US
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
