"""Meter aggregation over raw events (pure). The exact reference every faster path must agree with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from tollway.metering.events import Event
from tollway.metering.jsonpath import compile_path, extract
from tollway.metering.meters import Aggregation, Meter, WindowSize

GroupKey = tuple[str | None, ...]


@dataclass(frozen=True)
class MeterQuery:
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    window_size: WindowSize | None = None
    window_tz: tzinfo = UTC
    subjects: tuple[str, ...] | None = None
    group_by: tuple[str, ...] = ()
    filter_group_by: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryRow:
    value: Decimal
    window_start: datetime
    window_end: datetime
    subject: str | None
    group_by: dict[str, str | None]


@dataclass
class AggregationStats:
    """Events whose value could not be used (missing, or not a number where one is needed)."""

    skipped_values: int = 0


def dimension_text(value: Any) -> str | None:
    """How a group-by value reads in results: scalars as text, missing as None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return str(value)
    return None


# Sums are exact: within these bounds EXACT never rounds (a sum of 10^20 values of up to 37 integer
# and 36 fractional digits needs at most 93), where the default context would round past 28 digits.
MAX_INTEGER_DIGITS = 37
MAX_FRACTION_DIGITS = 36
EXACT = Context(prec=120, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])


def numeric_value(value: Any) -> Decimal | None:
    """A meter value as Decimal: JSON numbers and numeric strings, finite, below 10^37 in magnitude and
    with at most 36 decimal places; anything else is None (not a usable number)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float | str):
        if isinstance(value, str) and not value.isascii():
            return None  # Decimal() reads Arabic-Indic and other Unicode digits: a meter counts 0-9 only
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        if not number.is_finite():
            return None
    else:
        return None
    exponent = number.as_tuple().exponent
    if number and (
        number.adjusted() >= MAX_INTEGER_DIGITS or (isinstance(exponent, int) and exponent < -MAX_FRACTION_DIGITS)
    ):
        return None
    return number


_INT_BOUND = 10**MAX_INTEGER_DIGITS


def range_problem(value: Any) -> str | None:
    """Why a number a meter would aggregate lies outside the range it can count exactly (1e300, 10^40, 37
    decimal places, "Infinity"): None when it is in range, and for what is no number at all (absent, text,
    an object: the meter skips those, as documented). Ingest refuses such an event instead of dropping it."""
    if type(value) is int and -_INT_BOUND < value < _INT_BOUND:  # the usual case, without a Decimal
        return None
    if isinstance(value, bool) or value is None or numeric_value(value) is not None:
        return None
    if isinstance(value, str):
        if not value.isascii():
            return None
        try:
            Decimal(value.strip())
        except InvalidOperation:
            return None
    elif not isinstance(value, int | float | Decimal):
        return None
    shown = str(value) if len(str(value)) <= 40 else str(value)[:37] + "..."
    return (
        f"{shown} is outside the range a meter counts exactly (below 10^{MAX_INTEGER_DIGITS} in magnitude, "
        f"at most {MAX_FRACTION_DIGITS} decimal places, finite)"
    )


def window_bounds(moment: datetime, size: WindowSize, zone: tzinfo) -> tuple[datetime, datetime]:
    """The [start, end) window holding `moment`, aligned in `zone`, returned in UTC."""
    local = moment.astimezone(zone)
    if size is WindowSize.MINUTE:
        start = local.replace(second=0, microsecond=0).astimezone(UTC)
        return start, start + timedelta(minutes=1)
    if size is WindowSize.HOUR:
        start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        return start, start + timedelta(hours=1)
    if size is WindowSize.DAY:
        day = local.date()
        following = day + timedelta(days=1)
        return (
            datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC),
            datetime(following.year, following.month, following.day, tzinfo=zone).astimezone(UTC),
        )
    year, month = local.year, local.month
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    return (
        datetime(year, month, 1, tzinfo=zone).astimezone(UTC),
        datetime(next_year, next_month, 1, tzinfo=zone).astimezone(UTC),
    )


class _Accumulator:
    __slots__ = ("count", "latest", "latest_time", "maximum", "minimum", "total", "unique")

    def __init__(self) -> None:
        self.count = 0
        self.total = Decimal(0)
        self.minimum: Decimal | None = None
        self.maximum: Decimal | None = None
        self.latest: Decimal | None = None
        self.latest_time: datetime | None = None
        self.unique: set[str] = set()

    def result(self, aggregation: Aggregation) -> Decimal:
        return aggregated_value(
            aggregation, self.count, self.total, self.minimum, self.maximum, len(self.unique), self.latest
        )


def aggregated_value(
    aggregation: Aggregation,
    count: int,
    total: Decimal,
    minimum: Decimal | None,
    maximum: Decimal | None,
    uniques: int,
    latest: Decimal | None,
) -> Decimal:
    """A window's value from its partial aggregates (shared by raw aggregation and rollups)."""
    if aggregation is Aggregation.COUNT:
        return Decimal(count)
    if aggregation is Aggregation.SUM:
        return total
    if aggregation is Aggregation.AVG:
        return total / count if count else Decimal(0)
    if aggregation is Aggregation.MIN:
        return minimum if minimum is not None else Decimal(0)
    if aggregation is Aggregation.MAX:
        return maximum if maximum is not None else Decimal(0)
    if aggregation is Aggregation.UNIQUE_COUNT:
        return Decimal(uniques)
    return latest if latest is not None else Decimal(0)


def aggregate(
    meter: Meter,
    query: MeterQuery,
    events: Iterable[Event],
    *,
    now: datetime,
    stats: AggregationStats | None = None,
) -> list[QueryRow]:
    """Aggregate `events` (oldest first) for `meter` as `query` asks.

    Rules: `start` is inclusive, `end` exclusive. An event whose value is missing or not a number
    (where one is needed) is skipped for that meter and counted in `stats`; COUNT counts every event.
    UNIQUE_COUNT counts distinct values as text. LATEST is the value of the newest event.
    """
    stats = stats if stats is not None else AggregationStats()
    value_steps = compile_path(meter.value_property) if meter.value_property else None
    dimension_steps = {name: compile_path(path) for name, path in meter.group_by.items()}
    for name in query.group_by:
        if name != "subject" and name not in dimension_steps:
            raise ValueError(f"unknown groupBy {name!r} for meter {meter.slug}")
    for name in query.filter_group_by:
        if name not in dimension_steps:
            raise ValueError(f"unknown filterGroupBy {name!r} for meter {meter.slug}")
    by_subject = "subject" in query.group_by or query.subjects is not None
    dimensions = tuple(name for name in query.group_by if name != "subject")
    subjects = set(query.subjects) if query.subjects is not None else None
    filters = {name: set(values) for name, values in query.filter_group_by.items()}
    groups: dict[tuple[datetime, datetime, str | None, GroupKey], _Accumulator] = {}
    first_seen: datetime | None = None
    for event in events:
        if event.type != meter.event_type:
            continue
        if query.start is not None and event.time < query.start:
            continue
        if query.end is not None and event.time >= query.end:
            continue
        if subjects is not None and event.subject not in subjects:
            continue
        if filters and any(
            dimension_text(extract(event.data, dimension_steps[name])) not in allowed
            for name, allowed in filters.items()
        ):
            continue
        number: Decimal | None = None
        unique: str | None = None
        if meter.aggregation is Aggregation.UNIQUE_COUNT:
            assert value_steps is not None
            unique = dimension_text(extract(event.data, value_steps))
            if unique is None:
                stats.skipped_values += 1
                continue
        elif meter.aggregation is not Aggregation.COUNT:
            assert value_steps is not None
            number = numeric_value(extract(event.data, value_steps))
            if number is None:
                stats.skipped_values += 1
                continue
        if query.window_size is not None:
            window_start, window_end = window_bounds(event.time, query.window_size, query.window_tz)
        else:
            window_start = window_end = _WHOLE_RANGE
        key = (
            window_start,
            window_end,
            event.subject if by_subject else None,
            tuple(dimension_text(extract(event.data, dimension_steps[name])) for name in dimensions),
        )
        accumulator = groups.get(key)
        if accumulator is None:
            accumulator = groups[key] = _Accumulator()
        first_seen = event.time if first_seen is None or event.time < first_seen else first_seen
        accumulator.count += 1
        if number is not None:
            accumulator.total = EXACT.add(accumulator.total, number)
            if accumulator.minimum is None or number < accumulator.minimum:
                accumulator.minimum = number
            if accumulator.maximum is None or number > accumulator.maximum:
                accumulator.maximum = number
            if accumulator.latest_time is None or event.time >= accumulator.latest_time:
                accumulator.latest, accumulator.latest_time = number, event.time
        if unique is not None:
            accumulator.unique.add(unique)
    range_start = query.start or first_seen or now
    range_end = query.end or now
    rows = []
    for (window_start, window_end, subject, values), accumulator in groups.items():
        if window_start is _WHOLE_RANGE:
            window_start, window_end = range_start, range_end
        rows.append(
            QueryRow(
                value=accumulator.result(meter.aggregation),
                window_start=window_start,
                window_end=window_end,
                subject=subject,
                group_by=dict(zip(dimensions, values, strict=True)),
            )
        )
    rows.sort(key=_row_order)
    return rows


_WHOLE_RANGE = datetime(1, 1, 1, tzinfo=UTC)


def _row_order(row: QueryRow) -> tuple[Any, ...]:
    return (row.window_start, row.subject or "", tuple((v is None, v or "") for v in row.group_by.values()))


def parse_zone(name: str) -> tzinfo:
    """An IANA time zone. Raises ValueError for an unknown name."""
    if name in {"UTC", "Etc/UTC", "Z"}:
        return UTC
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
