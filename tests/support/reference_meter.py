"""An independent reference for meter queries: what the stores must answer, computed from raw events.

It shares no helper with the code it checks (tollway.metering.aggregation, rollup, query): its own
window arithmetic (wall-clock truncation in the zone, searched back to an instant), its own number
parsing (a regular expression into Fraction), its own group-by text and its own `$.name` lookup.
Only the data types (Event, Meter, MeterQuery, QueryRow) are shared, to compare answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from fractions import Fraction
from typing import Any

from tollway.metering.aggregation import MeterQuery, QueryRow
from tollway.metering.events import Event
from tollway.metering.meters import Aggregation, Meter, WindowSize

NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
MAX_MAGNITUDE = Fraction(10) ** 37  # at or above: not a usable number (the documented bound)


def lookup(data: dict[str, Any], path: str) -> Any:
    """`$.name` (the only path shape the reference tests use); None when absent."""
    assert path.startswith("$."), path
    assert "." not in path[2:], path
    return data.get(path[2:])


def as_number(value: Any) -> Fraction | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = Fraction(value)
    elif isinstance(value, str | float):
        text = repr(value) if isinstance(value, float) else value.strip()
        if not NUMBER.fullmatch(text):
            return None
        number = Fraction(text)
        mantissa, _, exponent = text.lower().partition("e")
        places = len(mantissa.partition(".")[2]) - int(exponent or 0)
        if number and places > 36:  # more than 36 decimal places as written: not a usable number
            return None
    else:
        return None
    return None if abs(number) >= MAX_MAGNITUDE else number


def as_text(value: Any) -> str | None:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return str(value)
    return None  # missing, null, objects and arrays


def to_decimal(value: Fraction) -> Decimal:
    """Exact when the denominator divides a power of ten (sums of decimals); else 28 significant digits."""
    denominator, scale = value.denominator, 0
    while denominator % 10 == 0:
        denominator, scale = denominator // 10, scale + 1
    for factor in (2, 5):
        while denominator % factor == 0:
            denominator //= factor
            scale += 1
    if denominator == 1:
        return Decimal(value.numerator * 10**scale // value.denominator).scaleb(-scale)
    return Decimal(value.numerator) / Decimal(value.denominator)


def _wall(moment: datetime, zone: tzinfo) -> datetime:
    """The naive wall-clock reading of `moment` in `zone`."""
    offset = zone.utcoffset(moment.astimezone(zone))
    assert offset is not None
    return moment.astimezone(UTC).replace(tzinfo=None) + offset


def _instants(wall: datetime, zone: tzinfo) -> list[datetime]:
    """Every UTC instant whose wall clock in `zone` reads `wall` (0, 1 or 2 of them)."""
    found = set()
    for hours in range(-16, 17):
        for quarter in range(4):
            candidate = (wall - timedelta(hours=hours, minutes=15 * quarter)).replace(tzinfo=UTC)
            if _wall(candidate, zone) == wall:
                found.add(candidate)
    for minutes in (-30, 30):  # Lord Howe's half-hour shift, offsets in minutes other than quarters
        for hours in range(-16, 17):
            candidate = (wall - timedelta(hours=hours, minutes=minutes)).replace(tzinfo=UTC)
            if _wall(candidate, zone) == wall:
                found.add(candidate)
    return sorted(found)


def reference_window(moment: datetime, size: WindowSize, zone: tzinfo) -> tuple[datetime, datetime]:
    wall = _wall(moment, zone)
    if size is WindowSize.MINUTE or size is WindowSize.HOUR:
        floor = wall.replace(second=0, microsecond=0)
        if size is WindowSize.HOUR:
            floor = floor.replace(minute=0)
        # the latest instant reading `floor` that is not after the moment, then 60 elapsed minutes/seconds
        starts = [i for i in _instants(floor, zone) if i <= moment] or _instants(floor, zone)[:1]
        start = starts[-1]
        return start, start + (timedelta(hours=1) if size is WindowSize.HOUR else timedelta(minutes=1))
    if size is WindowSize.DAY:
        first = datetime(wall.year, wall.month, wall.day)
        following = first + timedelta(days=1)
    else:
        first = datetime(wall.year, wall.month, 1)
        following = datetime(wall.year + wall.month // 12, wall.month % 12 + 1, 1)
    return _instants(first, zone)[0], _instants(following, zone)[0]


@dataclass
class _Group:
    count: int = 0
    numbers: list[tuple[datetime, int, Fraction]] = field(default_factory=list)
    texts: set[str] = field(default_factory=set)

    def value(self, aggregation: Aggregation) -> Decimal:
        values = [n for _, _, n in self.numbers]
        if aggregation is Aggregation.COUNT:
            return Decimal(self.count)
        if aggregation is Aggregation.UNIQUE_COUNT:
            return Decimal(len(self.texts))
        if not values:
            return Decimal(0)
        if aggregation is Aggregation.SUM:
            return to_decimal(sum(values, Fraction(0)))
        if aggregation is Aggregation.AVG:
            return to_decimal(sum(values, Fraction(0)) / len(values))
        if aggregation is Aggregation.MIN:
            return to_decimal(min(values))
        if aggregation is Aggregation.MAX:
            return to_decimal(max(values))
        return to_decimal(max(self.numbers, key=lambda item: (item[0], item[1]))[2])  # LATEST


def reference_rows(meter: Meter, query: MeterQuery, events: list[Event], *, now: datetime) -> list[QueryRow]:
    """The rows a meter query must answer over `events` (any order; ties in time: later in the list wins)."""
    by_subject = "subject" in query.group_by or query.subjects is not None
    names = [n for n in query.group_by if n != "subject"]
    groups: dict[tuple[Any, ...], _Group] = {}
    earliest: datetime | None = None
    for index, event in enumerate(events):
        if event.type != meter.event_type:
            continue
        if query.start is not None and not query.start <= event.time:
            continue
        if query.end is not None and not event.time < query.end:
            continue
        if query.subjects is not None and event.subject not in query.subjects:
            continue
        dims = {name: as_text(lookup(event.data, path)) for name, path in meter.group_by.items()}
        if any(dims[name] not in allowed for name, allowed in query.filter_group_by.items()):
            continue
        number: Fraction | None = None
        text: str | None = None
        if meter.aggregation is Aggregation.UNIQUE_COUNT:
            assert meter.value_property is not None
            text = as_text(lookup(event.data, meter.value_property))
            if text is None:
                continue
        elif meter.aggregation is not Aggregation.COUNT:
            assert meter.value_property is not None
            number = as_number(lookup(event.data, meter.value_property))
            if number is None:
                continue
        window = None if query.window_size is None else reference_window(event.time, query.window_size, query.window_tz)
        key = (window, event.subject if by_subject else None, tuple(dims[name] for name in names))
        group = groups.setdefault(key, _Group())
        group.count += 1
        if number is not None:
            group.numbers.append((event.time, index, number))
        if text is not None:
            group.texts.add(text)
        earliest = event.time if earliest is None or event.time < earliest else earliest
    rows = []
    for (window, subject, values), group in groups.items():
        if window is None:
            window = (query.start or earliest or now, query.end or now)
        rows.append(
            QueryRow(
                value=group.value(meter.aggregation),
                window_start=window[0],
                window_end=window[1],
                subject=subject,
                group_by=dict(zip(names, values, strict=True)),
            )
        )
    rows.sort(key=lambda r: (r.window_start, r.subject or "", tuple((v is None, v or "") for v in r.group_by.values())))
    return rows
