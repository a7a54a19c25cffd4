"""Chart data for the pages (pure): meter rows -> labels and series, every window of the range present (an empty
window is a zero, not a gap). The numbers go to Chart.js as a JSON data attribute; tables show exact values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from tollway.dashboard.fmt import Range
from tollway.metering.aggregation import QueryRow
from tollway.metering.meters import WindowSize

MAX_SERIES = 8  # more (many models): the largest 7 and "other"


def window_starts(start: datetime, end: datetime, window: WindowSize, tz: tzinfo) -> list[datetime]:
    """The window starts (UTC) of [start, end) for HOUR, DAY or MONTH windows in `tz`, the first one containing
    `start`."""
    local = start.astimezone(tz)
    if window is WindowSize.HOUR:
        first = start.replace(minute=0, second=0, microsecond=0)
        step = timedelta(hours=1)
        out, moment = [], first
        while moment < end:
            out.append(moment)
            moment += step
        return out
    out = []
    if window is WindowSize.DAY:
        current = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        while True:
            moment = current.replace(tzinfo=tz).astimezone(UTC)
            if moment >= end:
                return out
            out.append(moment)
            current += timedelta(days=1)
    year, month = local.year, local.month
    while True:
        moment = datetime(year, month, 1, tzinfo=tz).astimezone(UTC)
        if moment >= end:
            return out
        out.append(moment)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def series_chart(
    rows: Iterable[QueryRow], rng: Range, series_of: str, *, kind: str = "bar", stacked: bool = True
) -> dict[str, Any]:
    """One series per value of the group-by `series_of` ("type", "model", ...), one point per window."""
    starts = window_starts(rng.start, rng.end, rng.window, rng.tz)
    index = {moment: i for i, moment in enumerate(starts)}
    series: dict[str, list[Decimal]] = {}
    for row in rows:
        position = index.get(row.window_start.astimezone(UTC))
        if position is None:
            continue
        name = row.group_by.get(series_of) or "—"
        values = series.setdefault(name, [Decimal(0)] * len(starts))
        values[position] += row.value
    ordered = sorted(series.items(), key=lambda item: -sum(item[1]))
    if len(ordered) > MAX_SERIES:
        rest = [sum(column, Decimal(0)) for column in zip(*(v for _, v in ordered[MAX_SERIES - 1 :]), strict=True)]
        ordered = [*ordered[: MAX_SERIES - 1], ("other", rest)]
    return {
        "type": kind,
        "stacked": stacked,
        "labels": [rng.label(moment) for moment in starts],
        "series": [{"name": name, "values": [_plain(v) for v in values]} for name, values in ordered],
    }


def _plain(value: Decimal) -> float | int:
    """For drawing only (bar heights): an int where exact, else a float."""
    return int(value) if value == value.to_integral_value() else float(value)


def top(totals: dict[str, Decimal], count: int = 10) -> Sequence[tuple[str, Decimal]]:
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:count]
