"""NotificationWorker: the background steps of notifications, run where the billing worker runs (`tollway
serve` with TOLLWAY_BILLING_WORKER, and `tollway worker`):

- delivery (every `delivery_interval_s`, default 1 s): send due deliveries;
- events (every `balance_interval_s`, default 2 s): thresholds and resets (balance worker), budget
  thresholds and exceeded budgets, invoice events (from the invoice outbox), subscription events.

Several processes may each run one: claims, leases, marks and dedup keys keep every event and attempt once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from tollway.clock import Clock
from tollway.notifications.delivery import DeliveryWorker, Poller
from tollway.notifications.ports import NotificationStore

Step = Callable[[], Awaitable[object]]


class NotificationWorker:
    def __init__(
        self,
        delivery: DeliveryWorker,
        steps: Sequence[Step],
        store: NotificationStore,
        clock: Clock,
        *,
        delivery_interval_s: float = 1.0,
        balance_interval_s: float = 2.0,
        on_refused: Sequence[Callable[[str | None, datetime | None], None]] = (),
        rules_read: Callable[[], AbstractAsyncContextManager[object]] | None = None,
    ) -> None:
        self._rules_read = rules_read  # one read of the rules shared by a round's steps (NotificationService's)
        self._on_refused = list(on_refused)
        self.delivery = delivery
        self._steps = list(steps)
        self._store = store
        self._clock = clock
        self.oldest_pending_age_s = 0.0  # refreshed by each delivery round (a /metrics gauge)
        self.pokes = 0
        self._pollers = [
            Poller("notification-delivery", self._deliver, delivery_interval_s),
            Poller("notification-events", self.detect_once, balance_interval_s),
        ]

    def refused(self, limit: str | None, resets_at: datetime | None) -> None:
        """The gateway refused a call at `limit` (e.g. "budget:acme-monthly", resetting at `resets_at`): hand it to
        the steps that report refusals (budget.exceeded), then look for events now. Memory only: it runs on the
        request path."""
        for listener in self._on_refused:
            listener(limit, resets_at)
        self.poke()

    def poke(self) -> None:
        """Look for events now (e.g. spend control refused a call at a hard limit: its threshold event should not
        wait for the next round). Cheap: it only wakes the events poller; call it from the event loop."""
        self.pokes += 1
        self._pollers[1].wake()

    async def detect_once(self) -> None:
        """One round of every event-finding step (each failing on its own)."""
        failures: list[BaseException] = []
        async with self._rules_read() if self._rules_read is not None else contextlib.nullcontext():
            for step in self._steps:
                try:
                    await step()
                except Exception as exc:
                    failures.append(exc)
        if failures:
            raise failures[0]

    async def _deliver(self) -> None:
        # One read when the outbox has nothing open (the idle case): no claim (a write transaction) to make.
        oldest = await self._store.oldest_pending()
        if oldest is not None:
            while await self.delivery.run_once():
                pass
            oldest = await self._store.oldest_pending()
        self.oldest_pending_age_s = 0.0 if oldest is None else max(0.0, (self._clock.now() - oldest).total_seconds())

    async def run_once(self) -> None:
        """Find events, then deliver what is due (tests and `tollway notifications` drive this)."""
        await self.detect_once()
        await self._deliver()

    def start(self) -> None:
        for poller in self._pollers:
            poller.start()

    async def stop(self) -> None:
        for poller in self._pollers:
            await poller.stop()
        await self.delivery.close()
