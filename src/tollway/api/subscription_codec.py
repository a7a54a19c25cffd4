"""Subscriptions on the wire (OpenMeter's shapes): create, change, migrate, cancel; timings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tollway.api.wire import Json, Obj, optional_time, parse_moment
from tollway.billing.catalog.subscription_service import Timing
from tollway.billing.subscriptions import Subscription
from tollway.errors import ValidationError
from tollway.metering.events import format_time


def parse_timing(value: object, field: str = "timing", *, default: Timing = "immediate") -> Timing:
    """OpenMeter's SubscriptionTiming: "immediate", "next_billing_cycle" or an RFC 3339 time."""
    if value is None:
        return default
    if value in ("immediate", "next_billing_cycle"):
        return "immediate" if value == "immediate" else "next_billing_cycle"
    if isinstance(value, str):
        return parse_moment(value, field)
    raise ValidationError(f'{field} must be "immediate", "next_billing_cycle" or an RFC 3339 time', field=field)


@dataclass(frozen=True)
class SubscriptionInput:
    customer: str
    plan_key: str
    plan_version: int | None
    active_from: datetime | None
    billing_anchor: datetime | None
    name: str
    description: str
    metadata: dict[str, Any]


_SUBSCRIPTION_UNSUPPORTED = {"alignment", "startingPhase", "settlementMode", "costBasisMode"}
_DESCRIBED = {"name", "description", "metadata"}  # set when subscribing; a plan change carries them over


def decode_plan_reference(obj: Obj) -> tuple[str, int | None]:
    plan = obj.obj("plan", {"key", "version"})
    if plan is None:
        raise ValidationError("plan is required ({key, version?})", field=obj.at("plan"))
    return plan.req_text("key"), plan.integer("version")


def decode_subscription(body: object) -> SubscriptionInput:
    obj = Obj(
        body,
        "",
        {"customerId", "customerKey", "plan", "timing", "activeFrom", "billingAnchor"} | _DESCRIBED,
        _SUBSCRIPTION_UNSUPPORTED,
    )
    customer_id, customer_key = obj.text("customerId"), obj.text("customerKey")
    if (customer_id is None) == (customer_key is None):
        raise ValidationError("give exactly one of customerId and customerKey", field="customerId")
    plan_key, plan_version = decode_plan_reference(obj)
    if obj.has("timing") and obj.has("activeFrom"):
        raise ValidationError("give timing or activeFrom, not both", field="activeFrom")
    timing = parse_timing(obj.get("timing"))
    if timing == "next_billing_cycle":
        raise ValidationError('timing "next_billing_cycle" applies to changes only', field="timing")
    active_from = obj.time("activeFrom") or (timing if isinstance(timing, datetime) else None)
    return SubscriptionInput(
        customer=customer_id or customer_key or "",
        plan_key=plan_key,
        plan_version=plan_version,
        active_from=active_from,
        billing_anchor=obj.time("billingAnchor"),
        name=obj.text("name", empty=True) or "",
        description=obj.text("description", empty=True) or "",
        metadata=obj.metadata(),
    )


@dataclass(frozen=True)
class ChangeInput:
    plan_key: str
    plan_version: int | None
    timing: Timing


def decode_change(body: object) -> ChangeInput:
    obj = Obj(body, "", {"timing", "plan"}, _SUBSCRIPTION_UNSUPPORTED | _DESCRIBED | {"billingAnchor"})
    if not obj.has("timing"):
        raise ValidationError("timing is required", field="timing")
    plan_key, plan_version = decode_plan_reference(obj)
    return ChangeInput(plan_key=plan_key, plan_version=plan_version, timing=parse_timing(obj.get("timing")))


def decode_migrate(body: object) -> tuple[int | None, Timing]:
    obj = Obj(body, "", {"targetVersion", "timing"}, {"startingPhase", "billingAnchor"})
    return obj.integer("targetVersion"), parse_timing(obj.get("timing"))


def decode_cancel(body: object) -> Timing:
    obj = Obj(body, "", {"timing"})
    return parse_timing(obj.get("timing"))


def encode_subscription(subscription: Subscription, now: datetime) -> Json:
    return {
        "id": subscription.id,
        "name": subscription.name or None,
        "description": subscription.description or None,
        "metadata": subscription.metadata or None,
        "customerId": subscription.customer_id,
        "plan": {"id": subscription.plan_id, "key": subscription.plan_key, "version": subscription.plan_version},
        "currency": subscription.currency,
        "billingCadence": subscription.billing_cadence,
        "billingAnchor": format_time(subscription.billing_anchor),
        "activeFrom": format_time(subscription.active_from),
        "activeTo": optional_time(subscription.active_to),
        "status": subscription.status(now),
        "createdAt": optional_time(subscription.created_at),
        "updatedAt": optional_time(subscription.updated_at),
        "deletedAt": None,
    }
