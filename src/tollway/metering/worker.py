"""RollupWorker: a background task that folds newly stored events into meter rollups.

Queries stay exact whatever its lag (events past a meter's watermark are read raw); the worker
only keeps that tail short so a query costs about the number of windows. Several processes may
run one each: the store serializes rollup writers. Small chunks keep each rollup transaction short,
so ingestion (which shares SQLite's single write lock) never waits long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tollway.errors import UnavailableError
from tollway.metering.retention import Retention
from tollway.metering.service import Store

log = logging.getLogger("tollway.metering.worker")

PARKED_S = 300.0  # after a failure that is not an outage (a bug): retried this rarely, not in a loop


class RollupWorker:
    def __init__(
        self,
        store: Store,
        *,
        interval_s: float = 0.5,
        chunk: int = 50_000,
        pause_s: float = 0.005,
        retention: Retention | None = None,
        retention_interval_s: float = 600.0,
    ) -> None:
        self._store = store
        self._retention = retention  # raw events past it deleted, once rolled up, every retention_interval_s
        self._retention_interval_s = retention_interval_s
        self._expired_at: float | None = None
        self._interval_s = interval_s
        self._chunk = chunk
        self._pause_s = pause_s  # between chunks, so event writers waiting for the write lock get it
        self._task: asyncio.Task[None] | None = None
        self.rolled_total = 0
        self.failures_total = 0
        self.internal_errors_total = 0

    async def run_once(self) -> int:
        """Roll up until caught up. Returns how many events were read."""
        total = 0
        while True:
            done = await self._store.roll_up(self._chunk)
            total += done
            self.rolled_total += done
            if done < self._chunk:
                break
            await asyncio.sleep(self._pause_s)
        if self._retention is not None:
            now = asyncio.get_running_loop().time()
            if self._expired_at is None or now - self._expired_at >= self._retention_interval_s:
                self._expired_at = now
                await self._retention.run_once()
        return total

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tollway-rollup-worker")

    async def _run(self) -> None:
        delay = self._interval_s
        while True:
            try:
                await self.run_once()
                delay = self._interval_s
            except UnavailableError as exc:
                self.failures_total += 1
                delay = min(max(delay * 2, self._interval_s), 30.0)
                log.warning("rollup worker: %s (retrying in %.1fs)", exc, delay)
            except Exception:
                # A bug, not an outage. Events stay stored and queries stay exact (they read past the
                # watermark), so nothing is lost; rolling up is tried again rarely.
                self.failures_total += 1
                self.internal_errors_total += 1
                delay = PARKED_S
                log.exception("rollup worker failed on a bug; retrying in %.0fs", delay)
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
