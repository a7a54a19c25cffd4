"""Usage that waits too long to be stored: one warning a minute while the oldest of it is older than a threshold.

The age itself is the gauge `tollway_usage_backlog_age_seconds` (alert on it: docs/deployment.md). With
inline ingest it is the oldest event the gateway has not stored (a database outage); with external ingest,
the oldest segment the gateway handed over that no worker has stored yet (no worker, or a stuck one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger("tollway.metering.backlog")

CHECK_S = 5.0
WARN_EVERY_S = 60.0


class BacklogWatch:
    def __init__(
        self,
        age_s: Callable[[], float],
        *,
        threshold_s: float,
        warn_every_s: float = WARN_EVERY_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._age_s = age_s
        self._threshold_s = threshold_s
        self._warn_every_s = warn_every_s
        self._now = now
        self._warned_at: float | None = None
        self.warnings_total = 0

    def check(self) -> bool:
        """Warn if the oldest unstored usage is past the threshold and the last warning is a minute old."""
        age = self._age_s()
        if age < self._threshold_s:
            if self._warned_at is not None:
                log.warning("usage backlog caught up (oldest unstored usage now %.0f s old)", age)
            self._warned_at = None
            return False
        now = self._now()
        if self._warned_at is not None and now - self._warned_at < self._warn_every_s:
            return False
        self._warned_at = now
        self.warnings_total += 1
        log.warning(
            "usage not stored for %.0f s (threshold %.0f s): is the database reachable, is a `tollway worker` "
            "draining this journal?",
            age,
            self._threshold_s,
        )
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_S)
            self.check()
