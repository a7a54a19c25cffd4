"""Plans on the wire (OpenMeter's shapes): plans, phases, rate cards, prices, tiers, entitlement templates.

Decoding reads shapes and types, naming the offending field (`phases[0].rateCards[1].price.tiers[2].upToAmount`);
the price rules (tier order, percentages, minimum vs maximum) are the catalog service's, which names the same
fields. Encoding writes camelCase, money and quantities as decimal strings, times as RFC 3339 UTC.
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
from tollway.billing.pricing.model import (
    DynamicPrice,
    FlatPrice,
    PackagePrice,
    Tier,
    TieredPrice,
    TierMode,
    UnitPrice,
    UsagePrice,
    UsageTerms,
)
from tollway.errors import ValidationError
from tollway.money import decimal_text

TIER_MODES = ("graduated", "volume")
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


def decode_plan(body: object, *, create: bool) -> PlanInput:
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
        phases=tuple(decode_phase(p, f"phases[{i}]") for i, p in enumerate(phases)),
        description=obj.text("description", empty=True) or "",
        metadata=obj.metadata(),
    )


def decode_phase(value: object, path: str) -> Phase:
    obj = Obj(value, path, {"key", "name", "duration", "rateCards"}, unsupported={"description", "metadata"})
    cards = obj.items("rateCards", required=True)
    key = obj.req_text("key")
    return Phase(
        key=key,
        name=obj.text("name") or key,
        duration=obj.duration("duration"),
        rate_cards=tuple(decode_rate_card(c, f"{path}.rateCards[{i}]") for i, c in enumerate(cards)),
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


def decode_rate_card(value: object, path: str) -> RateCard:
    obj = Obj(value, path, _CARD_FIELDS, unsupported={"taxConfig"})
    kind = one_of(obj.get("type"), ("flat_fee", "usage_based"), obj.at("type"))
    key = obj.req_text("key")
    price = obj.obj("price", {"type", "amount", "paymentTerm", "minimumAmount", "maximumAmount"} | _PRICE_FIELDS)
    usage: UsageTerms | None = None
    flat: FlatPrice | None = None
    if price is not None:
        price_type = price.get("type")
        if kind == "flat_fee" or price_type == "flat":
            flat = decode_flat_price(price)
        else:
            usage = decode_usage_terms(price, obj.obj("discounts", {"percentage", "usage"}))
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


_PRICE_FIELDS = {"mode", "tiers", "quantityPerPackage", "multiplier"}


def decode_flat_price(price: Obj) -> FlatPrice:
    one_of(price.get("type"), ("flat",), price.at("type"))
    for name in ("minimumAmount", "maximumAmount", *_PRICE_FIELDS):
        if price.has(name):
            raise ValidationError(f"unknown field {price.at(name)} on a flat price", field=price.at(name))
    term = price.get("paymentTerm")
    return FlatPrice(
        amount=price.req_decimal("amount"),
        payment_term="in_arrears"
        if term is not None and one_of(term, ("in_advance", "in_arrears"), price.at("paymentTerm")) == "in_arrears"
        else "in_advance",
    )


_PRICE_SHAPES: dict[str, set[str]] = {
    "unit": {"amount"},
    "tiered": {"mode", "tiers"},
    "package": {"amount", "quantityPerPackage"},
    "dynamic": {"multiplier"},
}


def decode_usage_terms(price: Obj, discounts: Obj | None) -> UsageTerms:
    kind = one_of(price.get("type"), ("unit", "tiered", "package", "dynamic", "flat"), price.at("type"))
    for name in price.raw:
        if name not in _PRICE_SHAPES[kind] | {"type", "minimumAmount", "maximumAmount"} and price.has(name):
            raise ValidationError(f"unknown field {price.at(name)} on a {kind} price", field=price.at(name))
    model: UsagePrice
    if kind == "unit":
        model = UnitPrice(amount=price.req_decimal("amount"))
    elif kind == "tiered":
        mode: TierMode = (
            "volume" if one_of(price.get("mode"), TIER_MODES, price.at("mode")) == "volume" else "graduated"
        )
        model = TieredPrice(mode=mode, tiers=decode_tiers(price))
    elif kind == "package":
        model = PackagePrice(
            amount=price.req_decimal("amount"), quantity_per_package=price.req_decimal("quantityPerPackage")
        )
    else:
        multiplier = price.decimal("multiplier")
        model = DynamicPrice(multiplier=Decimal(1) if multiplier is None else multiplier)
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


def decode_tiers(price: Obj) -> tuple[Tier, ...]:
    tiers: list[Tier] = []
    for i, value in enumerate(price.items("tiers", required=True)):
        tier = Obj(value, f"{price.at('tiers')}[{i}]", {"upToAmount", "unitPrice", "flatPrice"})
        up_to = tier.decimal("upToAmount")
        unit, flat = tier.obj("unitPrice", {"type", "amount"}), tier.obj("flatPrice", {"type", "amount"})
        if unit is None and flat is None:
            raise ValidationError(f"{tier.path} needs a unitPrice or a flatPrice", field=tier.path)
        if unit is not None:
            one_of(unit.get("type"), ("unit",), unit.at("type"))
        if flat is not None:
            one_of(flat.get("type"), ("flat",), flat.at("type"))
        tiers.append(
            Tier(
                up_to=up_to,
                unit_price=unit.req_decimal("amount") if unit is not None else Decimal(0),
                flat_price=flat.req_decimal("amount") if flat is not None else Decimal(0),
            )
        )
    return tuple(tiers)


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


def encode_plan(plan: Plan) -> Json:
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
        "phases": [encode_phase(p, plan.billing_cadence) for p in plan.phases],
        "effectiveFrom": optional_time(plan.published_at),
        "effectiveTo": optional_time(plan.archived_at),
        "managedBy": plan.managed_by,
        "createdAt": optional_time(plan.created_at),
        "updatedAt": optional_time(plan.updated_at),
        "deletedAt": None,
        "validationErrors": [],
    }


def encode_phase(phase: Phase, plan_cadence: str) -> Json:
    return {
        "key": phase.key,
        "name": phase.name,
        "duration": phase.duration,
        "rateCards": [encode_rate_card(c, plan_cadence) for c in phase.rate_cards],
    }


def encode_rate_card(card: RateCard, plan_cadence: str) -> Json:
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
        out["price"] = {"type": "flat", "amount": decimal_text(card.flat.amount), "paymentTerm": card.flat.payment_term}
    if card.usage is not None:
        out["price"] = encode_usage_price(card.usage)
        discounts: Json = {}
        if card.usage.discount_percentage:
            discounts["percentage"] = {"percentage": decimal_text(card.usage.discount_percentage)}
        if card.usage.free_quantity:
            discounts["usage"] = {"quantity": decimal_text(card.usage.free_quantity)}
        out["discounts"] = discounts or None
    return out


def encode_usage_price(terms: UsageTerms) -> Json:
    price = terms.price
    out: Json
    if isinstance(price, UnitPrice):
        out = {"type": "unit", "amount": decimal_text(price.amount)}
    elif isinstance(price, TieredPrice):
        out = {"type": "tiered", "mode": price.mode, "tiers": [encode_tier(t) for t in price.tiers]}
    elif isinstance(price, PackagePrice):
        out = {
            "type": "package",
            "amount": decimal_text(price.amount),
            "quantityPerPackage": decimal_text(price.quantity_per_package),
        }
    else:
        out = {"type": "dynamic", "multiplier": decimal_text(price.multiplier)}
    out["minimumAmount"] = optional_decimal(terms.minimum_amount)
    out["maximumAmount"] = optional_decimal(terms.maximum_amount)
    return out


def encode_tier(tier: Tier) -> Json:
    return {
        "upToAmount": optional_decimal(tier.up_to),
        "unitPrice": {"type": "unit", "amount": decimal_text(tier.unit_price)},
        "flatPrice": {"type": "flat", "amount": decimal_text(tier.flat_price)},
    }


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
