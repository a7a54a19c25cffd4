"""Plans on the wire (OpenMeter's shapes): plans, phases, rate cards, prices, tiers, entitlement templates.

Decoding reads shapes and types, naming the offending field (`phases[0].rateCards[1].price.tiers[2].upToAmount`);
the price rules (tier order, percentages, minimum vs maximum) are the catalog service's, which names the same
fields. Encoding writes camelCase, money and quantities as decimal strings, times as RFC 3339 UTC. A price's own
fields are its model's: the registry's pricer for its `type` reads and writes them (`from_wire`, `to_wire`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tollway import bounded_json
from tollway.api.wire import Json, Obj, one_of, optional_decimal, optional_time
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.plans import Phase, Plan, RateCard
from tollway.billing.pricing.flat import flat_from_wire, flat_to_wire
from tollway.billing.pricing.model import FlatPrice, UsageTerms
from tollway.billing.pricing.registry import PRICERS, Pricers
from tollway.errors import ValidationError
from tollway.money import decimal_text

# Domain plan status -> OpenMeter's plan status.
PLAN_STATUS_WIRE = {"draft": "draft", "published": "active", "archived": "archived"}


@dataclass(frozen=True)
class PlanInput:
    key: str | None  # absent on an update
    name: str
    currency: str | None  # absent on an update
    billing_cadence: str
    phases: tuple[Phase, ...]
    description: str
    metadata: dict[str, Any]


_PLAN_FIELDS = {"name", "description", "metadata", "billingCadence", "phases"}
_PLAN_UNSUPPORTED = {"alignment", "proRatingConfig", "settlementMode"}


def decode_plan(body: object, *, create: bool, pricers: Pricers = PRICERS) -> PlanInput:
    allowed = _PLAN_FIELDS | {"key", "currency"} if create else _PLAN_FIELDS
    obj = Obj(body, "", allowed, _PLAN_UNSUPPORTED)
    phases = obj.items("phases", required=True)
    if not phases:
        raise ValidationError("phases must hold at least one phase", field="phases")
    return PlanInput(
        key=obj.req_text("key") if create else None,
        name=obj.req_text("name"),
        currency=obj.currency(required=True) if create else None,
        billing_cadence=obj.duration("billingCadence", required=True) or "",
        phases=tuple(decode_phase(p, f"phases[{i}]", pricers=pricers) for i, p in enumerate(phases)),
        description=obj.text("description", empty=True) or "",
        metadata=obj.metadata(),
    )


def decode_phase(value: object, path: str, *, pricers: Pricers = PRICERS) -> Phase:
    obj = Obj(value, path, {"key", "name", "duration", "rateCards"}, unsupported={"description", "metadata"})
    cards = obj.items("rateCards", required=True)
    key = obj.req_text("key")
    return Phase(
        key=key,
        name=obj.text("name") or key,
        duration=obj.duration("duration"),
        rate_cards=tuple(decode_rate_card(c, f"{path}.rateCards[{i}]", pricers=pricers) for i, c in enumerate(cards)),
    )


_CARD_FIELDS = {
    "type",
    "key",
    "name",
    "description",
    "metadata",
    "featureKey",
    "entitlementTemplate",
    "billingCadence",
    "price",
    "discounts",
}


def decode_rate_card(value: object, path: str, *, pricers: Pricers = PRICERS) -> RateCard:
    obj = Obj(value, path, _CARD_FIELDS, unsupported={"taxConfig"})
    kind = one_of(obj.get("type"), ("flat_fee", "usage_based"), obj.at("type"))
    key = obj.req_text("key")
    price = obj.obj("price", _FLAT_FIELDS | {"minimumAmount", "maximumAmount"} | pricers.wire_fields)
    usage: UsageTerms | None = None
    flat: FlatPrice | None = None
    if price is not None:
        price_type = price.get("type")
        if kind == "flat_fee" or price_type == "flat":
            flat = decode_flat_price(price, pricers=pricers)
        else:
            usage = decode_usage_terms(price, obj.obj("discounts", {"percentage", "usage"}), pricers=pricers)
    if flat is not None and obj.has("discounts"):
        raise obj.error("discounts", "are for usage-based prices only")
    if usage is not None and obj.text("featureKey") is None:
        raise obj.error("featureKey", "is required on a usage-based price")
    template = obj.get("entitlementTemplate")
    return RateCard(
        key=key,
        name=obj.text("name") or key,
        feature_key=obj.text("featureKey"),
        usage=usage,
        flat=flat,
        billing_cadence=obj.duration("billingCadence"),
        entitlement=None if template is None else decode_entitlement(template, obj.at("entitlementTemplate")),
        description=obj.text("description", empty=True) or "",
        metadata=obj.metadata(),
    )


_FLAT_FIELDS = {"type", "amount", "paymentTerm"}
_TERMS_FIELDS = {"type", "minimumAmount", "maximumAmount"}  # on every usage price, besides its model's fields


def decode_flat_price(price: Obj, *, pricers: Pricers = PRICERS) -> FlatPrice:
    one_of(price.get("type"), ("flat",), price.at("type"))
    for name in ("minimumAmount", "maximumAmount", *sorted(pricers.wire_fields - _FLAT_FIELDS)):
        if price.has(name):
            raise ValidationError(f"unknown field {price.at(name)} on a flat price", field=price.at(name))
    return flat_from_wire(price)


def decode_usage_terms(price: Obj, discounts: Obj | None, *, pricers: Pricers = PRICERS) -> UsageTerms:
    kind = one_of(price.get("type"), (*pricers.types, "flat"), price.at("type"))
    pricer = pricers.named(kind)
    if pricer is None:  # "flat": a flat price is read by decode_flat_price
        raise price.error("type", "must name a usage price model")
    for name in price.raw:
        if name not in pricer.wire_fields | _TERMS_FIELDS and price.has(name):
            raise ValidationError(f"unknown field {price.at(name)} on a {kind} price", field=price.at(name))
    model = pricer.from_wire(price)
    minimum, maximum = price.decimal("minimumAmount"), price.decimal("maximumAmount")
    percentage = free = Decimal(0)
    if discounts is not None:
        pct = discounts.obj("percentage", {"percentage"}, unsupported={"correlationId"})
        if pct is not None:
            percentage = pct.req_decimal("percentage")
        use = discounts.obj("usage", {"quantity"}, unsupported={"correlationId"})
        if use is not None:
            free = use.req_decimal("quantity")
    return UsageTerms(
        price=model, free_quantity=free, discount_percentage=percentage, minimum_amount=minimum, maximum_amount=maximum
    )


def decode_entitlement(value: object, path: str) -> EntitlementTemplate:
    kind = value.get("type") if isinstance(value, dict) else None
    kind = one_of(kind, ("metered", "boolean", "static"), f"{path}.type")
    if kind == "boolean":
        Obj(value, path, {"type"}, unsupported={"metadata"})
        return EntitlementTemplate(type="boolean")
    if kind == "static":
        obj = Obj(value, path, {"type", "config"}, unsupported={"metadata"})
        config = obj.get("config")
        if config is None:
            raise obj.error("config", "is required (a JSON string)")
        if isinstance(config, str):
            config = bounded_json.decode(
                config, field=obj.at("config"), what=obj.at("config"), decimals=True, nul=False
            )
        return EntitlementTemplate(type="static", config=_plain(config))
    obj = Obj(
        value,
        path,
        {"type", "isSoftLimit", "issueAfterReset", "usagePeriod"},
        unsupported={"metadata", "issueAfterResetPriority", "preserveOverageAtReset"},
    )
    return EntitlementTemplate(
        type="metered",
        limit=obj.decimal("issueAfterReset"),
        hard=not obj.boolean("isSoftLimit", False),
        usage_period=obj.duration("usagePeriod"),
    )


def _plain(value: Any) -> Any:
    """JSON read with exact decimals back to plain JSON values (static config is handed on as written)."""
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def encode_plan(plan: Plan, *, pricers: Pricers = PRICERS) -> Json:
    return {
        "id": plan.id,
        "key": plan.key,
        "version": plan.version,
        "name": plan.name,
        "description": plan.description or None,
        "metadata": plan.metadata or None,
        "currency": plan.currency,
        "billingCadence": plan.billing_cadence,
        "status": PLAN_STATUS_WIRE[plan.status],
        "phases": [encode_phase(p, plan.billing_cadence, pricers=pricers) for p in plan.phases],
        "effectiveFrom": optional_time(plan.published_at),
        "effectiveTo": optional_time(plan.archived_at),
        "managedBy": plan.managed_by,
        "createdAt": optional_time(plan.created_at),
        "updatedAt": optional_time(plan.updated_at),
        "deletedAt": None,
        "validationErrors": [],
    }


def encode_phase(phase: Phase, plan_cadence: str, *, pricers: Pricers = PRICERS) -> Json:
    return {
        "key": phase.key,
        "name": phase.name,
        "duration": phase.duration,
        "rateCards": [encode_rate_card(c, plan_cadence, pricers=pricers) for c in phase.rate_cards],
    }


def encode_rate_card(card: RateCard, plan_cadence: str, *, pricers: Pricers = PRICERS) -> Json:
    out: Json = {
        "type": "usage_based" if card.usage is not None else "flat_fee",
        "key": card.key,
        "name": card.name,
        "description": card.description or None,
        "metadata": card.metadata or None,
        "featureKey": card.feature_key,
        "billingCadence": card.billing_cadence
        if card.usage is None
        else card.billing_cadence or plan_cadence,  # a usage price always bills per period
        "price": None,
        "entitlementTemplate": None
        if card.entitlement is None
        else encode_entitlement(card.entitlement, plan_cadence),  # a usage period defaults to the plan's cadence
    }
    if card.flat is not None:
        out["price"] = flat_to_wire(card.flat)
    if card.usage is not None:
        out["price"] = encode_usage_price(card.usage, pricers=pricers)
        discounts: Json = {}
        if card.usage.discount_percentage:
            discounts["percentage"] = {"percentage": decimal_text(card.usage.discount_percentage)}
        if card.usage.free_quantity:
            discounts["usage"] = {"quantity": decimal_text(card.usage.free_quantity)}
        out["discounts"] = discounts or None
    return out


def encode_usage_price(terms: UsageTerms, *, pricers: Pricers = PRICERS) -> Json:
    pricer = pricers.of(terms.price)
    out: Json = {"type": pricer.type, **pricer.to_wire(terms.price)}
    out["minimumAmount"] = optional_decimal(terms.minimum_amount)
    out["maximumAmount"] = optional_decimal(terms.maximum_amount)
    return out


def encode_entitlement(template: EntitlementTemplate, cadence: str | None) -> Json:
    if template.type == "metered":
        return {
            "type": "metered",
            "isSoftLimit": not template.hard,
            "issueAfterReset": optional_decimal(template.limit),
            "usagePeriod": template.usage_period or cadence,
        }
    if template.type == "static":
        return {"type": "static", "config": json.dumps(template.config)}
    return {"type": "boolean"}
