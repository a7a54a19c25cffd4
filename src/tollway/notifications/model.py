"""Notification channels, rules, events and their deliveries (OpenMeter's notification model).

A *rule* says which events are wanted (its type, and for entitlement rules the features and thresholds)
and which *channels* receive them; a channel is a webhook (URL, custom headers, a `whsec_` signing secret).
An *event* is one occurrence (`{id, type, timestamp, data}` is its payload, what the receiver gets); it
has one *delivery* per channel, and each delivery keeps its *attempts*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

from tollway.notifications.wire import rfc3339

# OpenMeter's event types
BALANCE_THRESHOLD: Final = "entitlements.balance.threshold"
ENTITLEMENT_RESET: Final = "entitlements.reset"
INVOICE_CREATED: Final = "invoice.created"
INVOICE_UPDATED: Final = "invoice.updated"
# Tollway's own
INVOICE_PAID: Final = "invoice.paid"
INVOICE_PAYMENT_FAILED: Final = "invoice.payment_failed"
SUBSCRIPTION_CREATED: Final = "subscription.created"
SUBSCRIPTION_CHANGED: Final = "subscription.changed"
SUBSCRIPTION_CANCELED: Final = "subscription.canceled"
# emitted by spend control and credits (tollway.notifications.emit.Notifier is their door)
BUDGET_THRESHOLD: Final = "budget.threshold"
BUDGET_EXCEEDED: Final = "budget.exceeded"
CREDITS_BALANCE_LOW: Final = "credits.balance.low"
CREDITS_EXPIRING: Final = "credits.expiring"
CREDITS_TOPUP: Final = "credits.topup"

EVENT_TYPES: Final[tuple[str, ...]] = (
    BALANCE_THRESHOLD,
    ENTITLEMENT_RESET,
    INVOICE_CREATED,
    INVOICE_UPDATED,
    INVOICE_PAID,
    INVOICE_PAYMENT_FAILED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_CHANGED,
    SUBSCRIPTION_CANCELED,
    BUDGET_THRESHOLD,
    BUDGET_EXCEEDED,
    CREDITS_BALANCE_LOW,
    CREDITS_EXPIRING,
    CREDITS_TOPUP,
)
ENTITLEMENT_TYPES: Final = frozenset({BALANCE_THRESHOLD, ENTITLEMENT_RESET})  # rules with `features`
# rules with `thresholds` (credits.balance.low: amounts; credits.expiring: days before the expiry, optional)
THRESHOLD_RULE_TYPES: Final = frozenset({BALANCE_THRESHOLD, BUDGET_THRESHOLD, CREDITS_BALANCE_LOW, CREDITS_EXPIRING})

WEBHOOK: Final = "WEBHOOK"
ThresholdType = Literal["PERCENT", "NUMBER", "usage_percentage", "usage_value", "balance_value"]
THRESHOLD_TYPES: Final[tuple[ThresholdType, ...]] = (
    "PERCENT",
    "NUMBER",
    "usage_percentage",
    "usage_value",
    "balance_value",
)
DeliveryState = Literal["PENDING", "SENDING", "SUCCESS", "FAILED", "RESENDING"]
DELIVERY_STATES: Final[tuple[DeliveryState, ...]] = ("PENDING", "SENDING", "SUCCESS", "FAILED", "RESENDING")


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    url: str
    signing_secret: str  # whsec_<base64>: shown once, at creation
    created_at: datetime
    updated_at: datetime
    type: str = WEBHOOK
    custom_headers: dict[str, str] = field(default_factory=dict)
    disabled: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    deleted_at: datetime | None = None
    disabled_reason: str | None = None  # e.g. "the receiver answered 410 Gone"


@dataclass(frozen=True)
class Threshold:
    value: Decimal
    type: ThresholdType

    @property
    def key(self) -> str:
        """Stable name of the threshold within its rule (the unique key of what fired)."""
        return f"{self.type}:{self.value.normalize():f}"


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    type: str  # one of EVENT_TYPES
    channel_ids: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    disabled: bool = False
    feature_keys: tuple[str, ...] = ()  # entitlement rules: the features watched (empty: all)
    thresholds: tuple[Threshold, ...] = ()  # THRESHOLD_RULE_TYPES
    metadata: dict[str, str] = field(default_factory=dict)
    deleted_at: datetime | None = None

    @property
    def active(self) -> bool:
        return not self.disabled and self.deleted_at is None


@dataclass(frozen=True)
class Attempt:
    """One try to deliver an event to a channel."""

    at: datetime
    state: DeliveryState  # SUCCESS or FAILED
    status_code: int | None
    body: str  # the start of the receiver's answer, or why nothing came back
    duration_ms: int
    url: str


@dataclass(frozen=True)
class Delivery:
    """An event's delivery to one channel: its state, next attempt and attempts so far."""

    event_id: str
    channel_id: str
    state: DeliveryState
    attempts: int  # tries made so far (in the current round: a resend starts again at 0)
    next_attempt_at: datetime | None
    updated_at: datetime
    reason: str = ""
    history: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class Event:
    id: str  # also the webhook-id header: the receiver's dedup key, stable across retries
    type: str
    created_at: datetime
    data: dict[str, Any]
    rule_id: str | None = None
    feature_key: str | None = None
    subject_key: str | None = None
    deliveries: tuple[Delivery, ...] = ()

    def payload(self) -> dict[str, Any]:
        """What the receiver gets: OpenMeter's `{id, type, timestamp, data}`."""
        return {"id": self.id, "type": self.type, "timestamp": rfc3339(self.created_at), "data": self.data}


@dataclass(frozen=True)
class ThresholdMark:
    """What fired, once: a rule's threshold (or a reset) for one customer's feature in one usage period.

    The store holds (rule_id, target, threshold_key, period_start) unique, so two workers crossing the
    same threshold at once record it, and enqueue its event, once."""

    rule_id: str
    target: str  # "{customer_id}/{feature_key}"
    threshold_key: str  # Threshold.key, or "reset"
    period_start: datetime


@dataclass(frozen=True)
class DeliveryJob:
    """A claimed delivery with what sending it needs."""

    event: Event
    channel: Channel
    attempts: int  # this attempt's number (1 for the first try of a round)


@dataclass(frozen=True)
class EventFilter:
    rule_ids: tuple[str, ...] = ()
    channel_ids: tuple[str, ...] = ()
    feature_keys: tuple[str, ...] = ()
    subject_keys: tuple[str, ...] = ()
    states: tuple[DeliveryState, ...] = ()  # events with a delivery in one of these states (to one of channel_ids)
    start: datetime | None = None  # created at or after
    end: datetime | None = None  # created before
    limit: int | None = None
    offset: int = 0  # newest first: skip this many
