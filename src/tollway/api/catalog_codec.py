"""The catalog's wire format (OpenMeter's JSON shapes) <-> domain objects.

Decoding names the offending field of every refusal (`phases[0].rateCards[1].price.tiers[2].upToAmount`),
refuses unknown fields, and reads JSON numbers as exact decimals. Encoding writes camelCase, money and
quantities as decimal strings, times as RFC 3339 UTC.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from tollway.billing.customers import Address, Customer
from tollway.billing.entitlements import EntitlementTemplate, EntitlementValue
from tollway.billing.features import Feature
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
from tollway.billing.service import Timing
from tollway.billing.subscriptions import Subscription
from tollway.errors import ValidationError
from tollway.metering.events import format_time, parse_time
from tollway.money import decimal_text, parse_decimal

T = TypeVar("T")
Json = dict[str, Any]

# ISO-8601 durations as plans use them: P1M, P1Y, P2W, P1D, PT1H, P1DT12H ...
_DURATION = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")
_CURRENCY = re.compile(r"[A-Z]{3}")

TIER_MODES = ("graduated", "volume")
# Domain plan status -> OpenMeter's plan status.
PLAN_STATUS_WIRE = {"draft": "draft", "published": "active", "archived": "archived"}
PLAN_STATUS_DOMAIN = {wire: domain for domain, wire in PLAN_STATUS_WIRE.items()}


# -- reading JSON --------------------------------------------------------------------------------


def parse_body(raw: bytes) -> object:
    """A request body as JSON, numbers with a fraction read as exact Decimals (never floats)."""
    if not raw.strip():
        raise ValidationError("a JSON body is required", field="body")
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ValidationError(f"the body is not valid JSON: {exc}", field="body") from None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


class Obj:
    """A JSON object being decoded: typed reads that name the field they read, unknown fields refused.

    `unsupported` lists OpenMeter fields Tollway does not implement: accepted only when null or absent.
    A null value reads as absent.
    """

    def __init__(self, value: object, path: str, allowed: Collection[str], unsupported: Collection[str] = ()) -> None:
        if not isinstance(value, dict):
            raise ValidationError(f"{path or 'the body'} must be a JSON object", field=path or "body")
        for name, item in value.items():
            if name in unsupported and item is not None:
                raise ValidationError(
                    f"{self._join(path, name)} is not supported by Tollway", field=self._join(path, name)
                )
            if name not in allowed and name not in unsupported:
                raise ValidationError(f"unknown field {self._join(path, name)}", field=self._join(path, name))
        self.raw: dict[str, Any] = value
        self.path = path

    @staticmethod
    def _join(path: str, name: str) -> str:
        return f"{path}.{name}" if path else name

    def at(self, name: str) -> str:
        return self._join(self.path, name)

    def error(self, name: str, message: str) -> ValidationError:
        """`<path>.<name> <message>`, naming the field."""
        return ValidationError(f"{self.at(name)} {message}", field=self.at(name))

    def get(self, name: str) -> Any:
        return self.raw.get(name)

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def _missing(self, name: str) -> ValidationError:
        return ValidationError(f"{self.at(name)} is required", field=self.at(name))

    def text(self, name: str, *, required: bool = False, empty: bool = False) -> str | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise self._missing(name)
            return None
        if not isinstance(value, str):
            raise ValidationError(f"{self.at(name)} must be a string", field=self.at(name))
        if not empty and not value.strip():
            raise ValidationError(f"{self.at(name)} must not be empty", field=self.at(name))
        return value

    def req_text(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None
        return value

    def decimal(self, name: str, *, required: bool = False, minimum: Decimal | None = Decimal(0)) -> Decimal | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise self._missing(name)
            return None
        return parse_decimal(value, field=self.at(name), minimum=minimum)

    def req_decimal(self, name: str, *, minimum: Decimal | None = Decimal(0)) -> Decimal:
        value = self.decimal(name, required=True, minimum=minimum)
        assert value is not None
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ValidationError(f"{self.at(name)} must be true or false", field=self.at(name))
        return value

    def integer(self, name: str, *, minimum: int = 1) -> int | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValidationError(f"{self.at(name)} must be an integer >= {minimum}", field=self.at(name))
        return value

    def obj(self, name: str, allowed: Collection[str], unsupported: Collection[str] = ()) -> Obj | None:
        value = self.raw.get(name)
        return None if value is None else Obj(value, self.at(name), allowed, unsupported)

    def items(self, name: str, *, required: bool = False) -> list[Any]:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise self._missing(name)
            return []
        if not isinstance(value, list):
            raise ValidationError(f"{self.at(name)} must be an array", field=self.at(name))
        return value

    def strings(self, name: str) -> list[str]:
        values = self.items(name)
        for i, value in enumerate(values):
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(f"{self.at(name)}[{i}] must be a non-empty string", field=f"{self.at(name)}[{i}]")
        return values

    def metadata(self, name: str = "metadata") -> dict[str, Any]:
        value = self.raw.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValidationError(f"{self.at(name)} must be an object of strings", field=self.at(name))
        return dict(value)

    def duration(self, name: str, *, required: bool = False) -> str | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        return parse_duration(value, self.at(name))

    def time(self, name: str) -> datetime | None:
        value = self.text(name)
        return None if value is None else parse_moment(value, self.at(name))

    def currency(self, name: str = "currency", *, required: bool = False) -> str | None:
        value = self.text(name, required=required)
        if value is not None and _CURRENCY.fullmatch(value) is None:
            raise ValidationError(
                f"{self.at(name)} must be an ISO 4217 code in capitals (USD), got {value!r}", field=self.at(name)
            )
        return value


def parse_duration(value: str, field: str) -> str:
    match = _DURATION.fullmatch(value)
    if match is None or value.endswith("T") or not any(match.groups()) or not any(int(g or 0) for g in match.groups()):
        raise ValidationError(
            f"{field} must be a positive ISO-8601 duration (P1M, P1Y, P1W, P1D, PT1H), got {value!r}", field=field
        )
    return value


def parse_moment(value: str, field: str) -> datetime:
    try:
        return parse_time(value)
    except ValueError:
        raise ValidationError(f"{field} must be an RFC 3339 time with an offset, got {value!r}", field=field) from None


def parse_timing(value: object, field: str = "timing", *, default: Timing = "immediate") -> Timing:
    """OpenMeter's SubscriptionTiming: "immediate", "next_billing_cycle" or an RFC 3339 time."""
    if value is None:
        return default
    if value in ("immediate", "next_billing_cycle"):
        return "immediate" if value == "immediate" else "next_billing_cycle"
    if isinstance(value, str):
        return parse_moment(value, field)
    raise ValidationError(f'{field} must be "immediate", "next_billing_cycle" or an RFC 3339 time', field=field)


def one_of(value: object, allowed: Sequence[T], field: str) -> T:
    for option in allowed:
        if value == option:
            return option
    raise ValidationError(f"{field} must be one of {', '.join(map(str, allowed))}, got {value!r}", field=field)


# -- features ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureInput:
    key: str
    name: str | None
    meter_slug: str | None
    filters: dict[str, tuple[str, ...]]
    metadata: dict[str, Any]


def decode_feature(body: object) -> FeatureInput:
    obj = Obj(
        body,
        "",
        {"key", "name", "metadata", "meterSlug", "meterGroupByFilters", "advancedMeterGroupByFilters"},
        unsupported={"unitCost"},
    )
    filters: dict[str, tuple[str, ...]] = {}
    simple = obj.get("meterGroupByFilters")
    if simple is not None:
        if not isinstance(simple, dict):
            raise ValidationError("meterGroupByFilters must be an object", field="meterGroupByFilters")
        for name, value in simple.items():
            field = f"meterGroupByFilters.{name}"
            values = value if isinstance(value, list) else [value]  # a list: any of these (Tollway's extension)
            if not values or not all(isinstance(v, str) and v for v in values):
                raise ValidationError(f"{field} must be a string or a non-empty array of strings", field=field)
            filters[name] = tuple(dict.fromkeys(values))
    advanced = obj.get("advancedMeterGroupByFilters")
    if advanced is not None:
        if not isinstance(advanced, dict):
            raise ValidationError("advancedMeterGroupByFilters must be an object", field="advancedMeterGroupByFilters")
        for name, condition in advanced.items():
            path = f"advancedMeterGroupByFilters.{name}"
            if name in filters:
                raise ValidationError(f"{path}: {name!r} is filtered in meterGroupByFilters already", field=path)
            cond = Obj(condition, path, {"$eq", "$in"})
            if cond.has("$eq") == cond.has("$in"):
                raise ValidationError(f"{path} needs exactly one of $eq and $in", field=path)
            eq = cond.text("$eq")
            filters[name] = (eq,) if eq is not None else tuple(dict.fromkeys(cond.strings("$in")))
            if not filters[name]:
                raise ValidationError(f"{path}.$in must not be empty", field=f"{path}.$in")
    return FeatureInput(
        key=obj.req_text("key"),
        name=obj.text("name"),
        meter_slug=obj.text("meterSlug"),
        filters=filters,
        metadata=obj.metadata(),
    )


def encode_feature(feature: Feature) -> Json:
    return {
        "id": feature.id,
        "key": feature.key,
        "name": feature.name,
        "metadata": feature.metadata or None,
        "meterSlug": feature.meter_slug,
        # OpenMeter's map holds one value per name; several values ("any of") are in the advanced filters only
        "meterGroupByFilters": {k: v[0] for k, v in feature.filters.items() if len(v) == 1} or None,
        "advancedMeterGroupByFilters": {
            k: ({"$eq": v[0]} if len(v) == 1 else {"$in": list(v)}) for k, v in feature.filters.items()
        }
        or None,
        "managedBy": feature.managed_by,
        "createdAt": _time(feature.created_at),
        "updatedAt": _time(feature.updated_at),
        "archivedAt": _time(feature.archived_at),
        "deletedAt": None,
    }


# -- plans ---------------------------------------------------------------------------------------


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
        per = price.req_decimal("quantityPerPackage")
        if per <= 0:
            raise price.error("quantityPerPackage", "must be above 0")
        model = PackagePrice(amount=price.req_decimal("amount"), quantity_per_package=per)
    else:
        multiplier = price.decimal("multiplier")
        model = DynamicPrice(multiplier=Decimal(1) if multiplier is None else multiplier)
    minimum, maximum = price.decimal("minimumAmount"), price.decimal("maximumAmount")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise price.error("minimumAmount", "must not exceed maximumAmount")
    percentage = free = Decimal(0)
    if discounts is not None:
        pct = discounts.obj("percentage", {"percentage"}, unsupported={"correlationId"})
        if pct is not None:
            percentage = pct.req_decimal("percentage")
            if percentage > 100:
                raise pct.error("percentage", "must be at most 100")
        use = discounts.obj("usage", {"quantity"}, unsupported={"correlationId"})
        if use is not None:
            free = use.req_decimal("quantity")
    return UsageTerms(
        price=model, free_quantity=free, discount_percentage=percentage, minimum_amount=minimum, maximum_amount=maximum
    )


def decode_tiers(price: Obj) -> tuple[Tier, ...]:
    raw = price.items("tiers", required=True)
    if not raw:
        raise price.error("tiers", "must hold at least one tier")
    tiers: list[Tier] = []
    for i, value in enumerate(raw):
        tier = Obj(value, f"{price.at('tiers')}[{i}]", {"upToAmount", "unitPrice", "flatPrice"})
        up_to = tier.decimal("upToAmount")
        last = i == len(raw) - 1
        if last and up_to is not None:
            raise tier.error("upToAmount", "must be absent on the last tier (it is open-ended)")
        if not last and up_to is None:
            raise tier.error("upToAmount", "is required on every tier but the last")
        if up_to is not None and tiers and tiers[-1].up_to is not None and up_to <= tiers[-1].up_to:
            raise tier.error("upToAmount", f"must be above the previous tier's ({decimal_text(tiers[-1].up_to)})")
        if up_to is not None and up_to <= 0:
            raise tier.error("upToAmount", "must be above 0")
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
            try:
                config = json.loads(config, parse_float=Decimal)
            except ValueError:
                raise obj.error("config", "must hold valid JSON") from None
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
        "effectiveFrom": _time(plan.published_at),
        "effectiveTo": _time(plan.archived_at),
        "managedBy": plan.managed_by,
        "createdAt": _time(plan.created_at),
        "updatedAt": _time(plan.updated_at),
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
    out["minimumAmount"] = _dec(terms.minimum_amount)
    out["maximumAmount"] = _dec(terms.maximum_amount)
    return out


def encode_tier(tier: Tier) -> Json:
    return {
        "upToAmount": _dec(tier.up_to),
        "unitPrice": {"type": "unit", "amount": decimal_text(tier.unit_price)},
        "flatPrice": {"type": "flat", "amount": decimal_text(tier.flat_price)},
    }


def encode_entitlement(template: EntitlementTemplate, cadence: str | None) -> Json:
    if template.type == "metered":
        return {
            "type": "metered",
            "isSoftLimit": not template.hard,
            "issueAfterReset": _dec(template.limit),
            "usagePeriod": template.usage_period or cadence,
        }
    if template.type == "static":
        return {"type": "static", "config": json.dumps(template.config)}
    return {"type": "boolean"}


# -- customers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerInput:
    key: str
    name: str
    subjects: tuple[str, ...]
    email: str | None
    currency: str | None
    billing_address: Address | None
    description: str
    stripe_customer_id: str | None
    metadata: dict[str, Any]


_ADDRESS = {"country", "postalCode", "state", "city", "line1", "line2", "phoneNumber"}


def decode_customer(body: object) -> CustomerInput:
    obj = Obj(
        body,
        "",
        {
            "key",
            "name",
            "description",
            "metadata",
            "usageAttribution",
            "primaryEmail",
            "currency",
            "billingAddress",
            "stripeCustomerId",
        },
    )
    attribution = obj.obj("usageAttribution", {"subjectKeys"})
    subjects = attribution.strings("subjectKeys") if attribution is not None else []
    if len(set(subjects)) != len(subjects):
        raise ValidationError(
            "usageAttribution.subjectKeys lists a subject twice", field="usageAttribution.subjectKeys"
        )
    email = obj.text("primaryEmail")
    if email is not None and ("@" not in email or email.startswith("@") or email.endswith("@")):
        raise ValidationError(f"primaryEmail must be an email address, got {email!r}", field="primaryEmail")
    address = obj.obj("billingAddress", _ADDRESS)
    billing_address = None
    if address is not None:
        country = address.text("country")
        if country is not None and re.fullmatch(r"[A-Z]{2}", country) is None:
            raise ValidationError(
                f"billingAddress.country must be an ISO 3166-1 alpha-2 code (US), got {country!r}",
                field="billingAddress.country",
            )
        billing_address = Address(
            country=country,
            postal_code=address.text("postalCode"),
            state=address.text("state"),
            city=address.text("city"),
            line1=address.text("line1"),
            line2=address.text("line2"),
            phone_number=address.text("phoneNumber"),
        )
    return CustomerInput(
        key=obj.req_text("key"),
        name=obj.req_text("name"),
        subjects=tuple(subjects),
        email=email,
        currency=obj.currency(),
        billing_address=billing_address,
        description=obj.text("description", empty=True) or "",
        stripe_customer_id=obj.text("stripeCustomerId"),
        metadata=obj.metadata(),
    )


def encode_address(address: Address | None) -> Json | None:
    if address is None:
        return None
    return {
        "country": address.country,
        "postalCode": address.postal_code,
        "state": address.state,
        "city": address.city,
        "line1": address.line1,
        "line2": address.line2,
        "phoneNumber": address.phone_number,
    }


def encode_customer(customer: Customer, current: Subscription | None, subscriptions: list[Json] | None = None) -> Json:
    out: Json = {
        "id": customer.id,
        "key": customer.key,
        "name": customer.name,
        "description": customer.description or None,
        "metadata": customer.metadata or None,
        "usageAttribution": {"subjectKeys": list(customer.subjects)},
        "primaryEmail": customer.email,
        "currency": customer.currency,
        "billingAddress": encode_address(customer.billing_address),
        "currentSubscriptionId": current.id if current is not None else None,
        "stripeCustomerId": customer.stripe_customer_id,  # Tollway's extension: OpenMeter keeps it in its Stripe app
        "managedBy": customer.managed_by,
        "createdAt": _time(customer.created_at),
        "updatedAt": _time(customer.updated_at),
        "deletedAt": _time(customer.deleted_at),
    }
    if subscriptions is not None:
        out["subscriptions"] = subscriptions
    return out


# -- subscriptions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionInput:
    customer: str
    plan_key: str
    plan_version: int | None
    active_from: datetime | None
    billing_anchor: datetime | None
    name: str
    metadata: dict[str, Any]


_SUBSCRIPTION_UNSUPPORTED = {"alignment", "startingPhase", "settlementMode", "costBasisMode", "description"}


def decode_plan_reference(obj: Obj) -> tuple[str, int | None]:
    plan = obj.obj("plan", {"key", "version"})
    if plan is None:
        raise ValidationError("plan is required ({key, version?})", field=obj.at("plan"))
    return plan.req_text("key"), plan.integer("version")


def decode_subscription(body: object) -> SubscriptionInput:
    obj = Obj(
        body,
        "",
        {"customerId", "customerKey", "plan", "timing", "activeFrom", "billingAnchor", "name", "metadata"},
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
        metadata=obj.metadata(),
    )


@dataclass(frozen=True)
class ChangeInput:
    plan_key: str
    plan_version: int | None
    timing: Timing


def decode_change(body: object) -> ChangeInput:
    obj = Obj(body, "", {"timing", "plan"}, _SUBSCRIPTION_UNSUPPORTED | {"name", "metadata", "billingAnchor"})
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
        "activeTo": _time(subscription.active_to),
        "status": subscription.status(now),
        "createdAt": _time(subscription.created_at),
        "updatedAt": _time(subscription.updated_at),
        "deletedAt": None,
    }


# -- entitlement values --------------------------------------------------------------------------


def encode_entitlement_value(value: EntitlementValue) -> Json:
    return {
        "hasAccess": value.has_access,
        "balance": _dec(value.balance),
        "usage": _dec(value.usage),
        "overage": _dec(value.overage),
        "config": None if value.config is None else json.dumps(value.config),
    }


# -- lists ---------------------------------------------------------------------------------------

SortOrder = Literal["ASC", "DESC"]


@dataclass(frozen=True)
class Page:
    page: int
    size: int
    given: bool  # page or pageSize was in the query (OpenMeter lists features as a bare array otherwise)


def parse_page(params: Mapping[str, str]) -> Page:
    values: dict[str, int] = {}
    for name, default, top in (("page", 1, 1_000_000), ("pageSize", 100, 1000)):
        raw = params.get(name)
        if raw is None or raw == "":
            values[name] = default
            continue
        if not raw.isdigit() or not 1 <= int(raw) <= top:
            raise ValidationError(f"{name} must be an integer from 1 to {top}, got {raw!r}", field=name)
        values[name] = int(raw)
    return Page(values["page"], values["pageSize"], given="page" in params or "pageSize" in params)


def parse_flag(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return False
    if raw.lower() not in ("true", "false", "1", "0"):
        raise ValidationError(f"{name} must be true or false, got {raw!r}", field=name)
    return raw.lower() in ("true", "1")


def paginated(items: Sequence[T], page: Page, encode: Callable[[T], Json]) -> Json:
    start = (page.page - 1) * page.size
    return {
        "items": [encode(item) for item in items[start : start + page.size]],
        "page": page.page,
        "pageSize": page.size,
        "totalCount": len(items),
    }


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


# -- OpenAPI -------------------------------------------------------------------------------------

_PROBLEM_SCHEMA: Json = {
    "type": "object",
    "description": "RFC 7807 problem details; `field` names the offending request field.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string"},
    },
    "required": ["type", "title", "status", "detail"],
}
_PROBLEM_TEXT = {
    400: "Bad request: the named field is invalid; nothing was stored.",
    401: "Missing or wrong admin token.",
    404: "Not found.",
    409: "Conflict with the stored state (named field); nothing was changed.",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """RFC 7807 error responses for a route's OpenAPI description (401 always)."""
    return {
        status: {
            "description": _PROBLEM_TEXT[status],
            "content": {"application/problem+json": {"schema": _PROBLEM_SCHEMA}},
        }
        for status in sorted({401, *statuses})
    }


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` describing a JSON request body by a pydantic model, self-contained (no $refs): the route
    decodes the body itself, to name the offending field of any refusal."""
    return copy.deepcopy(_body_schema(model))


@functools.cache  # a pure function of the model class; generating a schema costs ~20 ms
def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}
