"""Subscription events, from the catalog's change journal: the catalog store writes one entry per change in the
transaction of the subscription write itself (tollway.billing.subscription_changes), and this step turns each
entry into one event per active rule of its type, then completes it:

- subscription.created: a subscription that no plan change started;
- subscription.changed: a subscription a plan change (or migration) replaced — data `{"from", "to"}`;
- subscription.canceled: a cancellation requested (`canceled_at`), not a replacement.

Only what happened after the rule was created is reported (a new rule does not replay history). Each event's
dedup key names the change (type, subscription, rule), so two workers draining the same entries, or a crash
between storing the events and completing the entry, store each event once; a crash before completing it
delays the event, never loses it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from tollway.billing.ports import CatalogStore
from tollway.billing.subscription_changes import SubscriptionChange
from tollway.clock import Clock
from tollway.notifications.model import SUBSCRIPTION_CANCELED, SUBSCRIPTION_CHANGED, SUBSCRIPTION_CREATED
from tollway.notifications.service import NotificationService
from tollway.notifications.shapes import Shapes

log = logging.getLogger("tollway.notifications")
TYPES = {"created": SUBSCRIPTION_CREATED, "changed": SUBSCRIPTION_CHANGED, "canceled": SUBSCRIPTION_CANCELED}


class SubscriptionEvents:
    def __init__(
        self,
        catalog_store: CatalogStore,
        service: NotificationService,
        shapes: Shapes,
        clock: Clock,
        *,
        batch: int = 100,
    ) -> None:
        self._catalog_store = catalog_store
        self._service = service
        self._shapes = shapes
        self._clock = clock
        self._batch = batch

    async def run_once(self) -> int:
        """Turn the pending journal entries into events; returns how many events were stored."""
        changes = await self._catalog_store.pending_subscription_changes(limit=self._batch)
        if not changes:
            return 0
        now = self._clock.now()
        stored = 0
        done: list[str] = []
        for change in changes:
            try:
                stored += await self._notify(change, now)
            except Exception as exc:  # left pending: tried again next round
                log.warning(
                    "subscription notification %s of %s not stored: %s", change.kind, change.subscription_id, exc
                )
                continue
            done.append(change.id)
        await self._catalog_store.complete_subscription_changes(done, at=now)
        return stored

    async def _notify(self, change: SubscriptionChange, now: datetime) -> int:
        event_type = TYPES[change.kind]
        rules = [r for r in await self._service.active_rules(event_type) if change.at >= r.created_at]
        if not rules:
            return 0
        data = await self._data(change, now)
        if data is None:
            return 0
        stored = 0
        for rule in rules:
            key = f"{event_type}:{change.subscription_id}@{rule.id}"
            stored += await self._service.record(rule, event_type, data, dedup_key=key) is not None
        return stored

    async def _data(self, change: SubscriptionChange, now: datetime) -> dict[str, Any] | None:
        subscription = await self._catalog_store.get_subscription(change.subscription_id)
        if subscription is None:
            return None
        if change.kind != "changed":
            return self._shapes.subscription(subscription, now)
        new = await self._catalog_store.get_subscription(change.related_id or "")
        if new is None:
            return None
        return {"from": self._shapes.subscription(subscription, now), "to": self._shapes.subscription(new, now)}
