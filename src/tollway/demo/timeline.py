"""The moments of the demo, on a clock the demo controls: one billing period (the current calendar month, UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

REQUEST_DAY = 15  # the requests are made on the 15th of the month, from 12:00 UTC, one minute apart
CLOSE_MARGIN = timedelta(minutes=1)


@dataclass(frozen=True)
class Timeline:
    period_start: datetime  # 00:00 UTC on the 1st: the catalog is applied and the subscription starts
    period_end: datetime  # 00:00 UTC on the 1st of the next month
    first_request: datetime  # the n-th request (from 0) is made at first_request + n minutes
    preview_at: datetime  # when the preview is asked for: after the last request, inside the period
    close_at: datetime  # past the period end + grace: the period closer invoices the period

    def request_at(self, index: int) -> datetime:
        return self.first_request + timedelta(minutes=index)


def month_timeline(today: datetime, grace: timedelta) -> Timeline:
    """The demo's moments for the calendar month (UTC) holding `today`."""
    day = today.astimezone(UTC)
    start = datetime(day.year, day.month, 1, tzinfo=UTC)
    end = (
        datetime(day.year + 1, 1, 1, tzinfo=UTC)
        if day.month == 12
        else datetime(day.year, day.month + 1, 1, tzinfo=UTC)
    )
    first_request = start.replace(day=REQUEST_DAY, hour=12)
    return Timeline(
        period_start=start,
        period_end=end,
        first_request=first_request,
        preview_at=first_request.replace(hour=18),
        close_at=end + grace + CLOSE_MARGIN,
    )
