from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tollway.billing.periods import (
    Cadence,
    add_cadence,
    fraction,
    parse_cadence,
    period_containing,
    periods_between,
)
from tollway.errors import ValidationError


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


MONTHLY = Cadence(months=1)


@pytest.mark.parametrize(
    ("text", "cadence", "canonical"),
    [
        ("P1M", Cadence(months=1), "P1M"),
        ("P1Y", Cadence(years=1), "P1Y"),
        ("P1W", Cadence(weeks=1), "P1W"),
        ("P1D", Cadence(days=1), "P1D"),
        ("PT1H", Cadence(hours=1), "PT1H"),
        ("P3M", Cadence(months=3), "P3M"),
        ("P2W", Cadence(weeks=2), "P2W"),
        ("P1Y6M", Cadence(years=1, months=6), "P1Y6M"),
        ("P1DT12H", Cadence(days=1, hours=12), "P1DT12H"),
        ("PT60M", Cadence(minutes=60), "PT60M"),
        ("PT3600S", Cadence(seconds=3600), "PT3600S"),
        ("P0Y1M", Cadence(months=1), "P1M"),
        ("PT1H30M15S", Cadence(hours=1, minutes=30, seconds=15), "PT1H30M15S"),
    ],
)
def test_parse_cadence(text: str, cadence: Cadence, canonical: str) -> None:
    parsed = parse_cadence(text)
    assert parsed == cadence
    assert parsed.text == canonical
    assert str(parsed) == canonical
    assert parse_cadence(canonical) == cadence


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "ISO-8601 duration"),
        ("P", "ISO-8601 duration"),
        ("PT", "ISO-8601 duration"),
        ("1M", "ISO-8601 duration"),
        ("p1m", "ISO-8601 duration"),
        ("P1", "ISO-8601 duration"),
        ("P1M1Y", "ISO-8601 duration"),
        ("P1H", "ISO-8601 duration"),
        ("P1MT", "ISO-8601 duration"),
        (" P1M", "ISO-8601 duration"),
        ("monthly", "ISO-8601 duration"),
        ("P0D", "longer than zero"),
        ("PT0S", "longer than zero"),
        ("P0Y0M", "longer than zero"),
        ("P1.5M", "whole numbers"),
        ("P0,5Y", "whole numbers"),
        ("PT1.5H", "whole numbers"),
        ("-P1M", "positive"),
        ("P-1M", "positive"),
        ("PT30M", "at least 1 hour"),
        ("PT59M59S", "at least 1 hour"),
        ("PT1S", "at least 1 hour"),
        ("P1001Y", "too long"),
        # issue 19: past timedelta's range (999,999,999 days) and int()'s 4300 digits, refused before any date
        ("PT999999999999H", "too long"),
        ("P999999999999D", "too long"),
        ("P9999999999W", "too long"),
        ("PT99999999999999S", "too long"),
        ("P" + "9" * 5000 + "D", "too long"),
        ("P\u0663D", "ISO-8601 duration"),  # Arabic-Indic 3: ASCII digits only
    ],
)
def test_parse_cadence_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_cadence(text, field="plans[0].billingCadence")
    assert info.value.field == "plans[0].billingCadence"
    assert fragment in info.value.message


def test_parse_cadence_default_field_and_minimum() -> None:
    with pytest.raises(ValidationError) as info:
        parse_cadence("PT30M")
    assert info.value.field == "billingCadence"
    # A shorter minimum (e.g. for a phase duration) lets sub-hour durations through.
    assert parse_cadence("PT30M", minimum=timedelta(minutes=30)) == Cadence(minutes=30)
    with pytest.raises(ValidationError, match="at least 30 minutes"):
        parse_cadence("PT29M", minimum=timedelta(minutes=30))
    with pytest.raises(ValidationError, match="ISO-8601"):
        parse_cadence(1, field="x")  # type: ignore[arg-type]


def test_cadence_rejects_negative_parts() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        Cadence(months=-1)
    assert Cadence().text == "PT0S"


def test_month_end_clamping_from_the_anchor() -> None:
    anchor = utc(2024, 1, 31, 10, 30)
    got = [add_cadence(anchor, MONTHLY, n) for n in range(13)]
    assert got == [
        utc(2024, 1, 31, 10, 30),
        utc(2024, 2, 29, 10, 30),  # leap year
        utc(2024, 3, 31, 10, 30),  # not 29 March: computed from the anchor, not the previous period
        utc(2024, 4, 30, 10, 30),
        utc(2024, 5, 31, 10, 30),
        utc(2024, 6, 30, 10, 30),
        utc(2024, 7, 31, 10, 30),
        utc(2024, 8, 31, 10, 30),
        utc(2024, 9, 30, 10, 30),
        utc(2024, 10, 31, 10, 30),
        utc(2024, 11, 30, 10, 30),
        utc(2024, 12, 31, 10, 30),
        utc(2025, 1, 31, 10, 30),
    ]
    assert add_cadence(utc(2025, 1, 31), MONTHLY, 1) == utc(2025, 2, 28)
    assert add_cadence(utc(2025, 1, 31), MONTHLY, -2) == utc(2024, 11, 30)
    assert add_cadence(utc(2025, 1, 31), MONTHLY, 0) == utc(2025, 1, 31)


def test_yearly_from_leap_day() -> None:
    anchor = utc(2024, 2, 29)
    yearly = Cadence(years=1)
    assert add_cadence(anchor, yearly, 1) == utc(2025, 2, 28)
    assert add_cadence(anchor, yearly, 4) == utc(2028, 2, 29)
    assert add_cadence(anchor, yearly, 100) == utc(2124, 2, 29)
    assert add_cadence(anchor, yearly, 76) == utc(2100, 2, 28)  # 2100 is not a leap year
    assert add_cadence(anchor, yearly, -1) == utc(2023, 2, 28)


def test_fixed_and_mixed_cadences() -> None:
    anchor = utc(2026, 3, 1, 0, 0)
    assert add_cadence(anchor, Cadence(weeks=1), 3) == utc(2026, 3, 22)
    assert add_cadence(anchor, Cadence(hours=1), 25) == utc(2026, 3, 2, 1)
    assert add_cadence(anchor, Cadence(days=1, hours=12), 2) == utc(2026, 3, 4)
    assert add_cadence(anchor, Cadence(years=1, months=6), 1) == utc(2027, 9, 1)
    assert add_cadence(anchor, Cadence(years=1, months=6), -1) == utc(2024, 9, 1)
    # P1M1D from 31 January: n months (clamped) then n days.
    assert add_cadence(utc(2026, 1, 31), Cadence(months=1, days=1), 1) == utc(2026, 3, 1)
    assert add_cadence(utc(2026, 1, 31), Cadence(months=1, days=1), 2) == utc(2026, 4, 2)


def test_aware_non_utc_in_utc_out_and_naive_rejected() -> None:
    paris_winter = timezone(timedelta(hours=1))
    got = add_cadence(datetime(2026, 1, 1, 1, 0, tzinfo=paris_winter), MONTHLY, 1)
    assert got == utc(2026, 2, 1, 0, 0)
    assert got.tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        add_cadence(datetime(2026, 1, 1), MONTHLY, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        period_containing(utc(2026, 1, 1), MONTHLY, datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("anchor", "cadence", "at", "start", "end"),
    [
        (utc(2026, 1, 15), MONTHLY, utc(2026, 1, 15), utc(2026, 1, 15), utc(2026, 2, 15)),
        (utc(2026, 1, 15), MONTHLY, utc(2026, 2, 14, 23, 59, 59, 999999), utc(2026, 1, 15), utc(2026, 2, 15)),
        (utc(2026, 1, 15), MONTHLY, utc(2026, 2, 15), utc(2026, 2, 15), utc(2026, 3, 15)),
        # before the anchor
        (utc(2026, 1, 15), MONTHLY, utc(2026, 1, 14), utc(2025, 12, 15), utc(2026, 1, 15)),
        (utc(2026, 1, 31), MONTHLY, utc(2025, 12, 1), utc(2025, 11, 30), utc(2025, 12, 31)),
        # long spans: 100 years either way (1200 periods)
        (utc(2026, 1, 31), MONTHLY, utc(2126, 3, 1), utc(2126, 2, 28), utc(2126, 3, 31)),
        (utc(2026, 1, 31), MONTHLY, utc(1926, 3, 30), utc(1926, 2, 28), utc(1926, 3, 31)),
        (utc(2024, 2, 29), Cadence(years=1), utc(2027, 2, 28, 12), utc(2027, 2, 28), utc(2028, 2, 29)),
        # fixed cadences
        (utc(2026, 1, 1), Cadence(weeks=1), utc(2026, 1, 20), utc(2026, 1, 15), utc(2026, 1, 22)),
        (utc(2026, 1, 1), Cadence(weeks=1), utc(2025, 12, 31), utc(2025, 12, 25), utc(2026, 1, 1)),
        (
            utc(2026, 1, 1, 0, 30),
            Cadence(hours=1),
            utc(2026, 1, 2, 5, 29),
            utc(2026, 1, 2, 4, 30),
            utc(2026, 1, 2, 5, 30),
        ),
        (utc(2026, 1, 1), Cadence(hours=1), utc(2126, 1, 1, 0, 0, 0, 1), utc(2126, 1, 1), utc(2126, 1, 1, 1)),
        (utc(2026, 1, 1), Cadence(months=3), utc(2026, 12, 31), utc(2026, 10, 1), utc(2027, 1, 1)),
        (utc(2026, 1, 1), Cadence(days=1, hours=12), utc(2026, 1, 3, 11), utc(2026, 1, 2, 12), utc(2026, 1, 4)),
    ],
)
def test_period_containing(anchor: datetime, cadence: Cadence, at: datetime, start: datetime, end: datetime) -> None:
    assert period_containing(anchor, cadence, at) == (start, end)


# A moment exactly on a period start belongs to the period it starts (periods are [start, end)). Literal rows for
# each cadence, at, before and after the anchor; month and year cadences where the index estimate falls one period
# short (so the step that moves it forward must treat `start <= at` as inside), and a 31st-day anchor whose starts
# are clamped to shorter months.
@pytest.mark.parametrize(
    ("anchor", "cadence", "at", "start", "end"),
    [
        (utc(2026, 1, 1), Cadence(days=1), utc(2026, 1, 1), utc(2026, 1, 1), utc(2026, 1, 2)),
        (utc(2026, 1, 1), Cadence(days=1), utc(2026, 3, 1), utc(2026, 3, 1), utc(2026, 3, 2)),
        (utc(2026, 1, 1, 6), Cadence(days=1), utc(2025, 12, 30, 6), utc(2025, 12, 30, 6), utc(2025, 12, 31, 6)),
        (utc(2026, 1, 1), Cadence(weeks=1), utc(2026, 1, 8), utc(2026, 1, 8), utc(2026, 1, 15)),
        (utc(2026, 1, 1), Cadence(weeks=1), utc(2026, 12, 31), utc(2026, 12, 31), utc(2027, 1, 7)),
        (utc(2026, 1, 1), Cadence(weeks=1), utc(2025, 12, 25), utc(2025, 12, 25), utc(2026, 1, 1)),
        (utc(2026, 1, 1), MONTHLY, utc(2026, 1, 1), utc(2026, 1, 1), utc(2026, 2, 1)),
        (utc(2026, 1, 1), MONTHLY, utc(2026, 2, 1), utc(2026, 2, 1), utc(2026, 3, 1)),
        (utc(2026, 1, 1), MONTHLY, utc(2026, 3, 1), utc(2026, 3, 1), utc(2026, 4, 1)),  # 59 days: estimate 1
        (utc(2026, 1, 1), MONTHLY, utc(2026, 12, 1), utc(2026, 12, 1), utc(2027, 1, 1)),
        (utc(2026, 1, 1), MONTHLY, utc(2025, 3, 1), utc(2025, 3, 1), utc(2025, 4, 1)),
        (utc(2026, 1, 1), Cadence(years=1), utc(2027, 1, 1), utc(2027, 1, 1), utc(2028, 1, 1)),  # 365 days: 0
        (utc(2026, 1, 1), Cadence(years=1), utc(2031, 1, 1), utc(2031, 1, 1), utc(2032, 1, 1)),
        (utc(2026, 1, 1), Cadence(years=1), utc(2025, 1, 1), utc(2025, 1, 1), utc(2026, 1, 1)),
        (utc(2026, 1, 31), MONTHLY, utc(2026, 2, 28), utc(2026, 2, 28), utc(2026, 3, 31)),  # 28 days: 0
        (utc(2026, 1, 31), MONTHLY, utc(2026, 4, 30), utc(2026, 4, 30), utc(2026, 5, 31)),
        (utc(2026, 1, 31), MONTHLY, utc(2026, 3, 31), utc(2026, 3, 31), utc(2026, 4, 30)),
        (utc(2026, 1, 31), MONTHLY, utc(2028, 2, 29), utc(2028, 2, 29), utc(2028, 3, 31)),  # leap February
        (utc(2026, 1, 31), MONTHLY, utc(2025, 11, 30), utc(2025, 11, 30), utc(2025, 12, 31)),
    ],
)
def test_a_moment_on_a_period_start_opens_that_period(
    anchor: datetime, cadence: Cadence, at: datetime, start: datetime, end: datetime
) -> None:
    assert period_containing(anchor, cadence, at) == (start, end)
    # one microsecond earlier is still the period before; the range starting there holds both
    before = at - timedelta(microseconds=1)
    previous = period_containing(anchor, cadence, before)
    assert previous[1] == start
    assert previous[0] < before < start
    assert periods_between(anchor, cadence, at, at + timedelta(microseconds=1)) == [(start, end)]
    assert periods_between(anchor, cadence, before, at + timedelta(microseconds=1)) == [previous, (start, end)]


def test_periods_between_across_a_year() -> None:
    anchor = utc(2025, 1, 31)
    got = periods_between(anchor, MONTHLY, utc(2025, 3, 15), utc(2026, 3, 15))
    assert got == [
        (utc(2025, 2, 28), utc(2025, 3, 31)),
        (utc(2025, 3, 31), utc(2025, 4, 30)),
        (utc(2025, 4, 30), utc(2025, 5, 31)),
        (utc(2025, 5, 31), utc(2025, 6, 30)),
        (utc(2025, 6, 30), utc(2025, 7, 31)),
        (utc(2025, 7, 31), utc(2025, 8, 31)),
        (utc(2025, 8, 31), utc(2025, 9, 30)),
        (utc(2025, 9, 30), utc(2025, 10, 31)),
        (utc(2025, 10, 31), utc(2025, 11, 30)),
        (utc(2025, 11, 30), utc(2025, 12, 31)),
        (utc(2025, 12, 31), utc(2026, 1, 31)),
        (utc(2026, 1, 31), utc(2026, 2, 28)),
        (utc(2026, 2, 28), utc(2026, 3, 31)),
    ]


def test_periods_between_edges() -> None:
    anchor = utc(2026, 1, 1)
    # end is exclusive: a range ending exactly on a period start does not include that period
    assert periods_between(anchor, MONTHLY, utc(2026, 1, 1), utc(2026, 2, 1)) == [(utc(2026, 1, 1), utc(2026, 2, 1))]
    assert periods_between(anchor, MONTHLY, utc(2026, 1, 31), utc(2026, 2, 1, 0, 0, 0, 1)) == [
        (utc(2026, 1, 1), utc(2026, 2, 1)),
        (utc(2026, 2, 1), utc(2026, 3, 1)),
    ]
    assert periods_between(anchor, MONTHLY, utc(2026, 2, 1), utc(2026, 2, 1)) == []
    assert periods_between(anchor, MONTHLY, utc(2026, 3, 1), utc(2026, 2, 1)) == []
    assert len(periods_between(anchor, Cadence(hours=1), utc(2025, 12, 31), utc(2026, 1, 2))) == 48


@pytest.mark.parametrize(
    ("part", "period", "expected"),
    [
        ((utc(2026, 4, 16), utc(2026, 5, 1)), (utc(2026, 4, 1), utc(2026, 5, 1)), Decimal("0.5")),  # 15 of 30 days
        ((utc(2026, 4, 1), utc(2026, 5, 1)), (utc(2026, 4, 1), utc(2026, 5, 1)), Decimal(1)),
        ((utc(2026, 4, 1), utc(2026, 4, 1)), (utc(2026, 4, 1), utc(2026, 5, 1)), Decimal(0)),
        ((utc(2026, 2, 1), utc(2026, 2, 8)), (utc(2026, 2, 1), utc(2026, 3, 1)), Decimal("0.25")),  # 7 of 28 days
        ((utc(2026, 1, 1), utc(2026, 1, 1, 6)), (utc(2026, 1, 1), utc(2026, 1, 2)), Decimal("0.25")),
    ],
)
def test_fraction(part: tuple[datetime, datetime], period: tuple[datetime, datetime], expected: Decimal) -> None:
    assert fraction(part[0], part[1], period[0], period[1]) == expected


def test_fraction_one_third_carries_60_digits() -> None:
    # 10 of 30 days
    got = fraction(utc(2026, 4, 1), utc(2026, 4, 11), utc(2026, 4, 1), utc(2026, 5, 1))
    assert got == Decimal("0." + "3" * 60)
    assert Fraction(got) != Fraction(1, 3)
    assert abs(Fraction(got) - Fraction(1, 3)) < Fraction(1, 10**60)


def test_fraction_one_microsecond_of_a_day() -> None:
    got = fraction(utc(2026, 1, 1), utc(2026, 1, 1, 0, 0, 0, 1), utc(2026, 1, 1), utc(2026, 1, 2))
    exact = Fraction(1, 86_400 * 10**6)
    assert got.as_tuple().digits[:7] == (1, 1, 5, 7, 4, 0, 7)  # 1.157407...E-11
    assert abs(Fraction(got) - exact) < exact / 10**58  # 60 significant digits


def test_fraction_rejects_bad_intervals() -> None:
    with pytest.raises(ValueError, match="within the period"):
        fraction(utc(2026, 3, 31), utc(2026, 4, 2), utc(2026, 4, 1), utc(2026, 5, 1))
    with pytest.raises(ValueError, match="within the period"):
        fraction(utc(2026, 4, 5), utc(2026, 4, 2), utc(2026, 4, 1), utc(2026, 5, 1))
    with pytest.raises(ValueError, match="end after"):
        fraction(utc(2026, 4, 1), utc(2026, 4, 1), utc(2026, 4, 1), utc(2026, 4, 1))


def _oracle_months(anchor: datetime, n: int) -> datetime:
    """Independent month arithmetic: step the month number one at a time, clamp with a hand-written table."""
    lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    year, month = anchor.year, anchor.month
    for _ in range(abs(n)):
        month += 1 if n > 0 else -1
        if month == 13:
            year, month = year + 1, 1
        elif month == 0:
            year, month = year - 1, 12
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    last = 29 if month == 2 and leap else lengths[month - 1]
    return anchor.replace(year=year, month=month, day=min(anchor.day, last))


anchors = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC))
cadences = st.sampled_from(
    [MONTHLY, Cadence(months=3), Cadence(years=1), Cadence(weeks=1), Cadence(hours=1), Cadence(days=1, hours=12)]
)


@settings(max_examples=200, deadline=None)
@given(anchor=anchors, n=st.integers(min_value=-240, max_value=240))
def test_add_months_matches_oracle(anchor: datetime, n: int) -> None:
    assert add_cadence(anchor, MONTHLY, n) == _oracle_months(anchor, n)


# Where a drawn moment lands: 7 minutes past a whole hour, exactly on a period start, or 1 microsecond before one.
ON_HOUR, ON_START, JUST_BEFORE_START = "hour+7min", "on a start", "1 us before a start"
placements = st.sampled_from([ON_HOUR, ON_START, JUST_BEFORE_START])


def drawn_moment(anchor: datetime, cadence: Cadence, placement: str, offset: int) -> datetime:
    """`offset` hours from the anchor (plus 7 minutes), or the start of period number `offset // 100` (at most
    192 periods away: the linear walk of the oracle stays short)."""
    if placement == ON_HOUR:
        return anchor + timedelta(hours=offset, minutes=7)
    start = add_cadence(anchor, cadence, offset // 100)
    return start if placement == ON_START else start - timedelta(microseconds=1)


@settings(max_examples=200, deadline=None)
@given(
    anchor=anchors,
    cadence=cadences,
    offset_hours=st.integers(min_value=-24 * 800, max_value=24 * 800),
    placement=placements,
)
@example(anchor=utc(2026, 1, 1), cadence=MONTHLY, offset_hours=200, placement=ON_START)
@example(anchor=utc(2026, 1, 31), cadence=MONTHLY, offset_hours=100, placement=ON_START)
@example(anchor=utc(2026, 1, 1), cadence=Cadence(years=1), offset_hours=100, placement=ON_START)
def test_period_containing_matches_a_linear_walk(
    anchor: datetime, cadence: Cadence, offset_hours: int, placement: str
) -> None:
    at = drawn_moment(anchor, cadence, placement, offset_hours)
    # Oracle: walk period by period from the anchor (fine for spans of a couple of years).
    n = 0
    while add_cadence(anchor, cadence, n) > at:
        n -= 1
    while add_cadence(anchor, cadence, n + 1) <= at:
        n += 1
    expected = (add_cadence(anchor, cadence, n), add_cadence(anchor, cadence, n + 1))
    start, end = period_containing(anchor, cadence, at)
    assert (start, end) == expected
    assert start <= at < end
    if placement == ON_START:
        assert start == at


@settings(max_examples=100, deadline=None)
@given(
    anchor=anchors,
    cadence=cadences,
    offset_days=st.integers(min_value=-400, max_value=400),
    length_hours=st.integers(min_value=1, max_value=24 * 120),
    placement=placements,
)
# from 2026-03-01 (period 216 // 100 = 2) and from 2026-02-28 (period 120 // 100 = 1)
@example(anchor=utc(2026, 1, 1), cadence=MONTHLY, offset_days=9, length_hours=1, placement=ON_START)
@example(anchor=utc(2026, 1, 31), cadence=MONTHLY, offset_days=5, length_hours=24 * 40, placement=ON_START)
def test_periods_between_tile_the_range(
    anchor: datetime, cadence: Cadence, offset_days: int, length_hours: int, placement: str
) -> None:
    if placement == ON_HOUR:
        start = anchor + timedelta(days=offset_days, minutes=13)
    else:
        start = drawn_moment(anchor, cadence, placement, offset_days * 24)
    end = start + timedelta(hours=length_hours)
    periods = periods_between(anchor, cadence, start, end)
    assert periods
    assert periods[0][0] <= start < periods[0][1]
    if placement == ON_START:
        assert periods[0][0] == start
    assert periods[-1][0] < end <= periods[-1][1]
    for (_, previous_end), (next_start, _) in itertools.pairwise(periods):
        assert previous_end == next_start
