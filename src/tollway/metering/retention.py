"""Retention of raw events (TOLLWAY_EVENTS_RETENTION): rollups are kept, raw events past it are deleted.

What must stay raw, whatever the setting: the events any meter has not yet rolled up (the store
deletes only below every meter's watermark), and the events an invoice may still read at the edges
of its billing period (a period starting at 10:00:37 reads [10:00:37, 10:01:00) raw, since rollups
are per minute): for an open period, for its grace, and for the late-usage lookback after it
(TOLLWAY_INVOICE_LOOKBACK_DAYS). So the retention in effect is at least the lookback plus a year
(the longest billing cadence) plus the grace; a shorter setting is raised to that, with a warning.

Events older than the retention in effect are refused at ingestion: their (source, id) may have been
deleted, so a resend could not be told from a first send.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timedelta
from typing import Protocol

from tollway.clock import Clock

log = logging.getLogger("tollway.metering.retention")

LONGEST_PERIOD = timedelta(days=367)  # a yearly billing period (a leap year) and a day of margin
CHUNK = 5_000
PAUSE_S = 0.005  # between chunks: writers waiting for SQLite's one write lock get it


class ExpiringStore(Protocol):
    async def expire_events(self, before: datetime, limit: int = CHUNK) -> int: ...


def retention_floor(*, lookback_days: int, grace_s: float) -> timedelta:
    """The shortest retention that keeps what invoices and running totals may still read raw."""
    return timedelta(days=lookback_days) + LONGEST_PERIOD + timedelta(days=math.ceil(grace_s / 86_400))


def effective_retention(configured: timedelta | None, *, lookback_days: int, grace_s: float) -> timedelta | None:
    """None: keep every raw event (no retention set)."""
    if configured is None:
        return None
    floor = retention_floor(lookback_days=lookback_days, grace_s=grace_s)
    if configured < floor:
        log.warning(
            "TOLLWAY_EVENTS_RETENTION of %d days is raised to %d days: billing periods, late-usage adjustments "
            "(TOLLWAY_INVOICE_LOOKBACK_DAYS) and running totals may still read those events",
            configured.days,
            floor.days,
        )
        return floor
    return configured


class Retention:
    """Deletes the raw events older than `keep` (that every meter rolled up), in chunks."""

    def __init__(self, store: ExpiringStore, clock: Clock, keep: timedelta, *, chunk: int = CHUNK) -> None:
        self._store = store
        self._clock = clock
        self.keep = keep
        self._chunk = chunk
        self.expired_total = 0

    def cutoff(self) -> datetime:
        return self._clock.now() - self.keep

    async def run_once(self) -> int:
        before = self.cutoff()
        total = 0
        while True:
            done = await self._store.expire_events(before, self._chunk)
            total += done
            self.expired_total += done
            if done < self._chunk:
                return total
            await asyncio.sleep(PAUSE_S)
