"""Subscription events, found by comparing the catalog with what was notified (each once, by dedup key):

- subscription.created: a subscription that no plan change started;
- subscription.changed: a subscription a plan change (or migration) replaced — data `{"from", "to"}`;
- subscription.canceled: a cancellation requested (`canceled_at`), not a replacement.

Only what happened after the rule was created is reported (a new rule does not replay history).
Emitted after the catalog write rather than in its transaction: the catalog's rows are the record, and this
step reads them until each event is stored, so a crash delays an event and never loses it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from tollway.billing.service import CatalogService
from tollway.billing.subscriptions import Subscription
from tollway.clock import Clock
from tollway.notifications.model import SUBSCRIPTION_CANCELED, SUBSCRIPTION_CHANGED, SUBSCRIPTION_CREATED, Rule
from tollway.notifications.service import NotificationService
from tollway.notifications.shapes import Shapes


class SubscriptionEvents:
    def __init__(self, catalog: CatalogService, service: NotificationService, shapes: Shapes, clock: Clock) -> None:
        self._catalog = catalog
        self._service = service
        self._shapes = shapes
        self._clock = clock
        self._done: set[str] = set()

    async def run_once(self) -> int:
        rules = {
            kind: await self._service.active_rules(kind)
            for kind in (SUBSCRIPTION_CREATED, SUBSCRIPTION_CHANGED, SUBSCRIPTION_CANCELED)
        }
        if not any(rules.values()):
            return 0
        now = self._clock.now()
        subscriptions = await self._catalog.subscriptions()
        by_id = {s.id: s for s in subscriptions}
        replacements = {s.replaced_by for s in subscriptions if s.replaced_by}
        stored = 0
        for s in subscriptions:
            created = s.created_at or s.active_from
            if s.id not in replacements:
                stored += await self._emit(
                    rules[SUBSCRIPTION_CREATED],
                    SUBSCRIPTION_CREATED,
                    s.id,
                    created,
                    partial(self._shapes.subscription, s, now),
                )
            if s.replaced_by and s.replaced_by in by_id:
                new = by_id[s.replaced_by]
                stored += await self._emit(
                    rules[SUBSCRIPTION_CHANGED],
                    SUBSCRIPTION_CHANGED,
                    s.id,
                    new.created_at or new.active_from,
                    partial(self._change, s, new, now),
                )
            elif s.canceled_at is not None:
                stored += await self._emit(
                    rules[SUBSCRIPTION_CANCELED],
                    SUBSCRIPTION_CANCELED,
                    s.id,
                    s.canceled_at,
                    partial(self._shapes.subscription, s, now),
                )
        return stored

    def _change(self, old: Subscription, new: Subscription, now: datetime) -> dict[str, Any]:
        return {"from": self._shapes.subscription(old, now), "to": self._shapes.subscription(new, now)}

    async def _emit(
        self,
        rules: list[Rule],
        event_type: str,
        subscription_id: str,
        happened: datetime,
        data: Callable[[], dict[str, Any]],
    ) -> int:
        stored = 0
        for rule in rules:
            key = f"{event_type}:{subscription_id}@{rule.id}"
            if key in self._done or happened < rule.created_at:
                continue
            event = await self._service.record(rule, event_type, data(), dedup_key=key)
            self._done.add(key)
            stored += event is not None
        return stored
