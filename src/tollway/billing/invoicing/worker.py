"""BillingWorker: a background task that closes billing periods (PeriodCloser) and pushes issued invoices to
Stripe (the sync step, a callable the Stripe adapter provides) every interval. Several processes may run
one each: the closer's claims and unique billing keys, and the outbox's claims, keep the work exactly once.
A Stripe outage never blocks period close: each step fails on its own and is retried next round."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tollway.billing.invoicing.close import CloseReport, PeriodCloser

log = logging.getLogger("tollway.billing.worker")

SyncStep = Callable[[], Awaitable[object]]


class BillingWorker:
    def __init__(
        self,
        closer: PeriodCloser,
        *,
        sync: SyncStep | None = None,
        release_sync: SyncStep | None = None,
        interval_s: float = 30.0,
        credits: SyncStep | None = None,
    ) -> None:
        self._credits = credits  # bought credits whose invoice was paid become active; auto-recharge checks
        self._closer = closer
        self._sync = sync
        self._release_sync = release_sync
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self.invoices_created_total = 0
        self.failures_total = 0

    def set_sync(self, sync: SyncStep | None, release: SyncStep | None = None) -> None:
        self._sync = sync
        self._release_sync = release

    async def run_once(self) -> CloseReport | None:
        """One round: close due periods, then one Stripe sync step. Returns the close report (None if it failed)."""
        report: CloseReport | None = None
        try:
            report = await self._closer.run_once()
            self.invoices_created_total += len(report.created)
            if report.failed:
                self.failures_total += report.failed
        except Exception as exc:
            self.failures_total += 1
            log.warning("billing worker: period close failed: %s", exc)
        if self._credits is not None:
            try:
                await self._credits()
            except Exception as exc:
                self.failures_total += 1
                log.warning("billing worker: credits step failed: %s", exc)
        if self._sync is not None:
            try:
                await self._sync()
            except Exception as exc:
                self.failures_total += 1
                log.warning("billing worker: Stripe sync failed: %s", exc)
        return report

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tollway-billing-worker")

    async def _run(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self._interval_s)

    async def stop(self) -> None:
        """Cancel the round in progress, then hand back what this process holds: its billing claims and the
        outbox rows it claimed and did not finish are free for the next process at once (a crashed process
        leaves them to their lease)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        for release in (self._closer.release, self._release_sync):
            if release is None:
                continue
            try:
                await release()
            except Exception as exc:  # the database is gone: the leases run out instead
                log.warning("billing worker: could not hand back its claims at stop: %s", exc)
