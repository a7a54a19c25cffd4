"""BalanceWorker: entitlement thresholds and resets, detected off the request path (as OpenMeter's balance
worker does). Every round (default each 2 s) it reads the metered entitlements the active rules watch, and:

- entitlements.balance.threshold: each threshold a reading has reached fires once per rule, customer,
  feature and usage period — the store's unique mark decides, so two workers (or two processes) seeing the
  same crossing at once store one event. A new usage period has no marks yet: the thresholds are re-armed.
  A threshold already passed when the rule is created fires on the first round after.
- entitlements.reset: once per rule, customer, feature and usage period that started after the rule was
  created (and after the subscription's start: its first period is no reset).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from tollway.clock import Clock
from tollway.notifications.entitlements import CatalogEntitlements, MeteredReading
from tollway.notifications.model import BALANCE_THRESHOLD, ENTITLEMENT_RESET, Rule, Threshold, ThresholdMark
from tollway.notifications.service import NotificationService
from tollway.notifications.shapes import Shapes
from tollway.notifications.thresholds import Reading, reached_thresholds
from tollway.notifications.wire import number, rfc3339

RESET = "reset"
MAX_KNOWN = 100_000


class BalanceWorker:
    def __init__(
        self,
        service: NotificationService,
        entitlements: CatalogEntitlements,
        shapes: Shapes,
        clock: Clock,
        *,
        on_fired: Callable[[str], None] | None = None,
    ) -> None:
        self._service = service
        self._entitlements = entitlements
        self._shapes = shapes
        self._clock = clock
        self._known: set[ThresholdMark] = set()  # marks seen stored: not asked for again
        self._on_fired = on_fired

    async def run_once(self) -> int:
        """One round; returns how many events it stored."""
        rules = [
            *await self._service.active_rules(BALANCE_THRESHOLD),
            *await self._service.active_rules(ENTITLEMENT_RESET),
        ]
        if not rules:
            return 0
        now = self._clock.now()
        features = None if any(not r.feature_keys for r in rules) else {k for r in rules for k in r.feature_keys}
        readings = await self._entitlements.readings(now, features)
        stored = 0
        for rule in rules:
            for reading in readings:
                if rule.feature_keys and reading.feature.key not in rule.feature_keys:
                    continue
                if rule.type == BALANCE_THRESHOLD:
                    stored += await self._thresholds(rule, reading, now)
                else:
                    stored += await self._reset(rule, reading, now)
        if len(self._known) > MAX_KNOWN:
            self._known.clear()
        return stored

    async def _thresholds(self, rule: Rule, reading: MeteredReading, now: datetime) -> int:
        usage = reading.value.usage if reading.value.usage is not None else Decimal(0)
        hits = reached_thresholds(rule.thresholds, Reading(total=reading.limit, usage=usage))
        stored = 0
        for threshold in hits:
            mark = ThresholdMark(rule.id, reading.target, threshold.key, reading.period_start)
            stored += await self._fire(rule, BALANCE_THRESHOLD, reading, mark, now, threshold)
        return stored

    async def _reset(self, rule: Rule, reading: MeteredReading, now: datetime) -> int:
        start = reading.period_start
        if start <= reading.subscription.active_from or start < rule.created_at:
            return 0
        mark = ThresholdMark(rule.id, reading.target, RESET, start)
        return await self._fire(rule, ENTITLEMENT_RESET, reading, mark, now, None)

    async def _fire(
        self,
        rule: Rule,
        event_type: str,
        reading: MeteredReading,
        mark: ThresholdMark,
        now: datetime,
        threshold: Threshold | None,
    ) -> int:
        if mark in self._known:
            return 0
        if await self._service.store.has_mark(mark):
            self._known.add(mark)
            return 0
        data = self.payload(reading, now)
        if threshold is not None:
            data["threshold"] = {"value": number(threshold.value), "type": threshold.type}
        subject = reading.customer.subjects[0] if reading.customer.subjects else None
        event = await self._service.record(
            rule, event_type, data, mark=mark, feature_key=reading.feature.key, subject_key=subject
        )
        self._known.add(mark)
        if event is not None and self._on_fired is not None:
            self._on_fired(event_type)
        return int(event is not None)

    def payload(self, reading: MeteredReading, now: datetime) -> dict[str, Any]:
        """OpenMeter's entitlement payload data: entitlement, feature, subject, customer, value."""
        subscription, template = reading.subscription, reading.template
        subject = reading.customer.subjects[0] if reading.customer.subjects else ""
        return {
            "entitlement": {
                "id": f"{subscription.id}/{reading.feature.key}",
                "type": "metered",
                "featureId": reading.feature.id,
                "featureKey": reading.feature.key,
                "subjectKey": subject,
                "customerId": reading.customer.id,
                "subscriptionId": subscription.id,
                "isSoftLimit": not template.hard,
                "issueAfterReset": str(reading.limit),
                "usagePeriod": {
                    "interval": template.usage_period or subscription.billing_cadence,
                    "anchor": rfc3339(subscription.billing_anchor),
                },
                "currentUsagePeriod": {"from": rfc3339(reading.period_start), "to": rfc3339(reading.period_end)},
                "lastReset": rfc3339(reading.period_start),
                "measureUsageFrom": rfc3339(reading.usage_from),
            },
            "feature": self._shapes.feature(reading.feature),
            "subject": {"key": subject},
            "customer": self._shapes.customer(reading.customer),
            "value": self._shapes.entitlement_value(reading.value),
        }
