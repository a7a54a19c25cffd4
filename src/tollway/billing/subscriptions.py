"""Subscriptions: a customer on one plan version from `active_from` (inclusive) to `active_to` (exclusive).

A plan change ends one subscription and starts another at the same instant; billing periods follow
`billing_anchor` + n x `billing_cadence`. Only usage at or after `active_from` is billed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

SubscriptionStatus = Literal["scheduled", "active", "canceled", "inactive"]


@dataclass(frozen=True)
class Subscription:
    id: str
    customer_id: str
    plan_id: str  # the plan version subscribed to
    plan_key: str
    plan_version: int
    currency: str
    billing_cadence: str  # ISO-8601 duration, from the plan
    billing_anchor: datetime  # periods start at anchor + n x cadence (default: active_from)
    active_from: datetime
    active_to: datetime | None = None  # set by a cancellation or a plan change
    name: str = ""
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    canceled_at: datetime | None = None  # when the cancellation was requested
    replaced_by: str | None = None  # the subscription a plan change or migration started
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def active_at(self, at: datetime) -> bool:
        return self.active_from <= at and (self.active_to is None or at < self.active_to)

    def status(self, at: datetime) -> SubscriptionStatus:
        if at < self.active_from:
            return "scheduled"
        if self.active_to is None:
            return "active"
        if at < self.active_to:
            return "canceled" if self.canceled_at is not None and self.replaced_by is None else "active"
        return "inactive"


def active_at(subscriptions: Iterable[Subscription], at: datetime) -> Subscription | None:
    """The subscription active at `at` among one customer's (at most one is, by the catalog's invariant)."""
    return next((s for s in subscriptions if s.active_at(at)), None)
