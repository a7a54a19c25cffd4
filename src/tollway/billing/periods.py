"""Billing cadences (ISO-8601 durations) and the billing periods they cut from an anchor. Pure functions, UTC.

Period n of a subscription is [anchor + n x cadence, anchor + (n + 1) x cadence), each bound computed from the
anchor (never by adding periods one after another), so month ends clamp without drifting: anchored on 31 January,
monthly periods start on 28/29 February, 31 March, 30 April, 31 May ...
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

from tollway.errors import ValidationError
from tollway.money import share as money_share

_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?",
    re.ASCII,  # digits 0-9 only (\d would take Arabic-Indic and other Unicode digits)
)
_FRACTIONAL = re.compile(r"\d[.,]\d", re.ASCII)

# Bounds that keep every period of a real subscription inside datetime's range.
_MAX_MONTHS: Final = 12 * 1000
_MAX_SECONDS: Final = 1000 * 366 * 86_400
_MAX_DIGITS: Final = 15  # longer numbers are past the bounds above whatever their unit (and int() refuses 4300+)
_US_PER_SECOND: Final = 1_000_000
# The Gregorian calendar repeats every 400 years: 146,097 days in 4,800 months.
_DAYS_PER_400_YEARS: Final = 146_097
_MONTHS_PER_400_YEARS: Final = 4_800
_US_PER_DAY: Final = 86_400 * _US_PER_SECOND

MINIMUM_CADENCE: Final = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Cadence:
    """An ISO-8601 duration with whole, non-negative parts (P1M, P1Y6M, P2W, P1DT12H, PT1H ...)."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        parts = (self.years, self.months, self.weeks, self.days, self.hours, self.minutes, self.seconds)
        if any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in parts):
            raise ValueError(f"cadence parts must be non-negative integers, got {parts}")

    @property
    def text(self) -> str:
        """The canonical ISO-8601 text: designators in order, zero parts left out ("P1Y6M", "P1DT12H")."""
        date_parts = ((self.years, "Y"), (self.months, "M"), (self.weeks, "W"), (self.days, "D"))
        time_parts = ((self.hours, "H"), (self.minutes, "M"), (self.seconds, "S"))
        date = "".join(f"{value}{unit}" for value, unit in date_parts if value)
        time = "".join(f"{value}{unit}" for value, unit in time_parts if value)
        if not date and not time:
            return "PT0S"
        return f"P{date}" + (f"T{time}" if time else "")

    @property
    def calendar_months(self) -> int:
        """The calendar part, in months (years x 12 + months)."""
        return self.years * 12 + self.months

    @property
    def fixed(self) -> timedelta:
        """The fixed-length part (weeks, days, hours, minutes, seconds); UTC days are always 24 hours."""
        return timedelta(weeks=self.weeks, days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds)

    def __str__(self) -> str:
        return self.text


def parse_cadence(text: str, *, field: str = "billingCadence", minimum: timedelta = MINIMUM_CADENCE) -> Cadence:
    """Parse an ISO-8601 duration of whole, positive parts, at least `minimum` long (one hour by default)."""
    if not isinstance(text, str):
        raise ValidationError(
            f'{field} must be an ISO-8601 duration string like "P1M", got {_shown(text)}', field=field
        )
    if text.startswith("-") or "-" in text:
        raise ValidationError(f"{field} must be a positive duration, got {_shown(text)}", field=field)
    if _FRACTIONAL.search(text):
        raise ValidationError(
            f'{field} must use whole numbers ("P1DT12H", not "P1.5D"), got {_shown(text)}', field=field
        )
    match = _DURATION.fullmatch(text)
    if match is None or text == "P":
        raise ValidationError(
            f'{field} must be an ISO-8601 duration like "P1M", "P1Y", "P2W", "P1D" or "PT1H", got {_shown(text)}',
            field=field,
        )
    too_long = ValidationError(f"{field} is too long (at most 1000 years), got {_shown(text)}", field=field)
    groups = match.groupdict()
    if any(value is not None and len(value.lstrip("0")) > _MAX_DIGITS for value in groups.values()):
        raise too_long
    parts = {name: int(value) for name, value in groups.items() if value is not None}
    # Bounded in whole numbers before any timedelta or date is made of it (timedelta overflows past
    # 999,999,999 days and datetime past year 9999).
    months = parts.get("years", 0) * 12 + parts.get("months", 0)
    seconds = (
        ((parts.get("weeks", 0) * 7 + parts.get("days", 0)) * 24 + parts.get("hours", 0)) * 60 + parts.get("minutes", 0)
    ) * 60 + parts.get("seconds", 0)
    if months == 0 and seconds == 0:
        raise ValidationError(f"{field} must be longer than zero, got {_shown(text)}", field=field)
    if months > _MAX_MONTHS or seconds > _MAX_SECONDS:
        raise too_long
    cadence = Cadence(**parts)
    if cadence.calendar_months == 0 and cadence.fixed < minimum:
        raise ValidationError(f"{field} must be at least {_describe(minimum)} long, got {_shown(text)}", field=field)
    return cadence


def _shown(text: object) -> str:
    """The refused text as an error message quotes it: cut short when long."""
    return repr(text[:37] + "...") if isinstance(text, str) and len(text) > 40 else repr(text)


def _describe(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "1 hour" if hours == 1 else f"{hours} hours"
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def add_cadence(anchor: datetime, cadence: Cadence, n: int) -> datetime:
    """anchor + n x cadence, computed from the anchor; months and years clamp to the month's last day."""
    start = _utc(anchor, "anchor")
    return _add_months(start, cadence.calendar_months * n) + cadence.fixed * n


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * _US_PER_SECOND + delta.microseconds


def _index_containing(anchor: datetime, cadence: Cadence, at: datetime) -> int:
    """The n with anchor + n x cadence <= at < anchor + (n + 1) x cadence."""
    if cadence.calendar_months == 0 and cadence.fixed == timedelta(0):
        raise ValueError("a zero cadence has no periods")
    offset = _us(at - anchor)
    # Average length of one period over the 400-year Gregorian cycle, times 4800 to stay in integers. Calendar
    # dates stray from that average by a few days at most, so the estimate is within a step or two of n.
    period_x4800 = (
        cadence.calendar_months * _DAYS_PER_400_YEARS * _US_PER_DAY + _us(cadence.fixed) * _MONTHS_PER_400_YEARS
    )
    n = (offset * _MONTHS_PER_400_YEARS) // period_x4800
    while add_cadence(anchor, cadence, n) > at:
        n -= 1
    while add_cadence(anchor, cadence, n + 1) <= at:
        n += 1
    return n


def period_containing(anchor: datetime, cadence: Cadence, at: datetime) -> tuple[datetime, datetime]:
    """The billing period [start, end) that contains `at` (before the anchor too)."""
    start_anchor = _utc(anchor, "anchor")
    n = _index_containing(start_anchor, cadence, _utc(at, "at"))
    return add_cadence(start_anchor, cadence, n), add_cadence(start_anchor, cadence, n + 1)


def periods_between(
    anchor: datetime, cadence: Cadence, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The billing periods overlapping [start, end), in order (empty when start >= end)."""
    start_anchor, start, end = _utc(anchor, "anchor"), _utc(start, "start"), _utc(end, "end")
    if start >= end:
        return []
    n = _index_containing(start_anchor, cadence, start)
    periods: list[tuple[datetime, datetime]] = []
    period_start = add_cadence(start_anchor, cadence, n)
    while period_start < end:
        period_end = add_cadence(start_anchor, cadence, n + 1)
        periods.append((period_start, period_end))
        n += 1
        period_start = period_end
    return periods


def fraction(part_start: datetime, part_end: datetime, period_start: datetime, period_end: datetime) -> Decimal:
    """The share of [period_start, period_end) that [part_start, part_end) covers, by exact duration.

    Durations are counted in microseconds; the ratio is exact when it terminates (1/2, 3/10) and is rounded once
    to 60 significant digits otherwise (1/3: `tollway.money.share`), far below any currency's minor unit.
    """
    part_start, part_end = _utc(part_start, "part_start"), _utc(part_end, "part_end")
    period_start, period_end = _utc(period_start, "period_start"), _utc(period_end, "period_end")
    if period_end <= period_start:
        raise ValueError("the period must end after it starts")
    if not period_start <= part_start <= part_end <= period_end:
        raise ValueError("the part must lie within the period and not end before it starts")
    if part_start == period_start and part_end == period_end:
        return Decimal(1)
    share = money_share(_us(part_end - part_start), _us(period_end - period_start))
    return Decimal(0) if share.is_zero() else share
