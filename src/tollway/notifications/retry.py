"""The Standard Webhooks retry schedule and what a receiver's answer means (pure).

Attempt 1 is immediate; after a failure, attempt n+1 waits SCHEDULE[n] (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
10 h); after the 8th failure the delivery is FAILED. 2xx ends it (SUCCESS); 410 Gone disables the channel;
anything else (a redirect too: they are not followed), a timeout or no connection, retries.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Literal

SCHEDULE: Final[tuple[timedelta, ...]] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS: Final = len(SCHEDULE)
TIMEOUT_S: Final = 10.0

Outcome = Literal["success", "gone", "retry"]


def outcome(status_code: int | None) -> Outcome:
    """None: a timeout or a connection that failed."""
    if status_code is not None and 200 <= status_code < 300:
        return "success"
    if status_code == 410:
        return "gone"
    return "retry"


def next_attempt(attempts: int, failed_at: datetime) -> datetime | None:
    """When to try again after `attempts` failed tries; None once the schedule is spent."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return failed_at + SCHEDULE[attempts]
