"""Windows a limit counts over, and when each resets (pure).

A window is named by its kind; its bounds at a moment are computed, never stored, so every process
(and Redis) agrees on them and a window rolls over when the first request after its end opens the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from tollway.billing import periods

WindowKind = Literal["billing_period", "month", "day", "hour", "lifetime"]
WINDOW_KINDS: tuple[WindowKind, ...] = ("billing_period", "month", "day", "hour", "lifetime")
LIFETIME_START = datetime(1970, 1, 1, tzinfo=UTC)


# built per call, never changed after: not frozen (a frozen __init__ costs a setattr per field)
@dataclass(slots=True, unsafe_hash=True)
class Window:
    """[start, end): `end` None for a lifetime window (it never resets)."""

    start: datetime
    end: datetime | None

    @property
    def tag(self) -> str:
        """The window's part of a counter key: its start in whole seconds since the epoch."""
        return str(int(self.start.timestamp()))

    def seconds_left(self, at: datetime) -> int:
        """Whole seconds until the window resets (at least 1); 0 for a window that never resets."""
        if self.end is None:
            return 0
        return max(1, int((self.end - at).total_seconds() + 0.999999))


def window_at(
    kind: WindowKind,
    at: datetime,
    *,
    anchor: datetime | None = None,
    cadence: str | None = None,
) -> Window:
    """The window of `kind` containing `at` (UTC calendar for month/day/hour).

    billing_period: the period of `cadence` (ISO-8601) anchored at `anchor` (a subscription's billing
    anchor); without a subscription it falls back to the calendar month."""
    at = at.astimezone(UTC)
    if kind == "lifetime":
        return Window(LIFETIME_START, None)
    if kind == "hour":
        start = at.replace(minute=0, second=0, microsecond=0)
        return Window(start, start + timedelta(hours=1))
    if kind == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return Window(start, start + timedelta(days=1))
    if kind == "billing_period" and anchor is not None and cadence is not None:
        return period_window(anchor, cadence, at)
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return Window(start, end)


def period_window(anchor: datetime, cadence: str, at: datetime) -> Window:
    """The period of an ISO-8601 cadence anchored at `anchor` that contains `at`."""
    start, end = periods.period_containing(anchor, periods.parse_cadence(cadence), at)
    return Window(start, end)


class PeriodCache:
    """`period_window` for the gateway's hot path: the last window of each (anchor, cadence), reused while the
    moment asked for falls inside it (a cadence is parsed and a period found once per period, not per call)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._windows: dict[tuple[datetime, str], Window] = {}
        self._max = max_entries

    def window(self, anchor: datetime, cadence: str, at: datetime) -> Window:
        found = self._windows.get((anchor, cadence))
        if found is not None and found.start <= at and (found.end is None or at < found.end):
            return found
        window = period_window(anchor, cadence, at)
        if len(self._windows) >= self._max:
            self._windows.clear()
        self._windows[(anchor, cadence)] = window
        return window
