"""`tollway worker` (and the storage process of `tollway serve`): runs what the composition root built for it
until a signal, or until its parent is gone."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass

from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.adapters.stripe.client import StripeApi
from tollway.billing.invoicing.worker import BillingWorker
from tollway.metering.spool import JournalIngester
from tollway.metering.worker import RollupWorker
from tollway.notifications.worker import NotificationWorker


@dataclass
class Worker:
    """`tollway worker`: stores the usage that gateways on this host hand over through the journal,
    keeps meter rollups up to date, and runs the billing worker (period close, Stripe sync)."""

    store: SqlEventStore
    ingester: JournalIngester
    rollups: RollupWorker
    billing: BillingWorker | None = None
    stripe: StripeApi | None = None  # the sync step's HTTP session, closed on shutdown
    notifier: NotificationWorker | None = None  # webhook deliveries and event detection

    async def run(self, *, watch_stdin: bool = False) -> None:
        """Until SIGTERM or SIGINT; with `watch_stdin` (the storage process of `tollway serve`) also until
        standard input closes, which it does when the parent dies, however it died."""
        await asyncio.to_thread(upgrade, self.store.engine)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if watch_stdin:
            fd = sys.stdin.fileno()

            def readable() -> None:
                try:
                    closed = not os.read(fd, 4096)
                except OSError:
                    closed = True
                if closed:
                    loop.remove_reader(fd)
                    stop.set()

            loop.add_reader(fd, readable)
        self.rollups.start()
        if self.billing is not None:
            self.billing.start()
        if self.notifier is not None:
            self.notifier.start()
        try:
            await self.ingester.run(stop)
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop the background work and release the Stripe session and the database."""
        if self.billing is not None:
            await self.billing.stop()
        if self.notifier is not None:
            await self.notifier.stop()
        if self.stripe is not None:
            await self.stripe.close()
        await self.rollups.stop()
        await self.store.close()
