"""Catalog objects as JSON records for the SQL adapter: decimals as exact strings, times as UTC microseconds.

`decode_*(encode_*(x)) == x` for every catalog object; the contract suite holds the SQL adapter to it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from tollway.billing.customers import Address, Customer
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.features import Feature
from tollway.billing.plans import Phase, Plan, RateCard
from tollway.billing.pricing.flat import flat_from_record, flat_to_record
from tollway.billing.pricing.model import UsagePrice, UsageTerms
from tollway.billing.pricing.registry import PRICERS, Pricers
from tollway.billing.subscriptions import Subscription
from tollway.metering.events import from_micros, to_micros

Record = dict[str, Any]


def dumps(record: Record) -> str:
    return orjson.dumps(record).decode()


def loads(text: str) -> Record:
    loaded: Record = orjson.loads(text)
    return loaded


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)  # str() keeps the exact digits and exponent


def _num(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _us(moment: Any) -> int | None:
    return None if moment is None else to_micros(moment)


def _at(micros: int | None) -> Any:
    return None if micros is None else from_micros(micros)


# -- features -----------------------------------------------------------------------------------------


def encode_feature(feature: Feature) -> Record:
    return {
        "name": feature.name,
        "filters": {name: list(values) for name, values in feature.filters.items()},
        "metadata": feature.metadata,
    }


def decode_feature(
    record: Record,
    *,
    id: str,
    key: str,
    meter_slug: str | None,
    managed_by: str,
    created_us: int,
    updated_us: int,
    archived_us: int | None,
) -> Feature:
    return Feature(
        id=id,
        key=key,
        name=record["name"],
        meter_slug=meter_slug,
        filters={name: tuple(values) for name, values in record["filters"].items()},
        metadata=record["metadata"],
        managed_by=managed_by,
        created_at=from_micros(created_us),
        updated_at=from_micros(updated_us),
        archived_at=_at(archived_us),
    )


# -- prices and plans ---------------------------------------------------------------------------------


def encode_usage_price(price: UsagePrice, *, pricers: Pricers = PRICERS) -> Record:
    """{"type": <price type>, <the model's fields, as its pricer stores them>}."""
    pricer = pricers.of(price)
    return {"type": pricer.type, **pricer.to_record(price)}


def decode_usage_price(record: Record, *, pricers: Pricers = PRICERS) -> UsagePrice:
    kind = record["type"]
    pricer = pricers.named(kind)
    if pricer is None:
        raise ValueError(f"unknown stored price type {kind!r}")
    price: UsagePrice = pricer.from_record(record)
    return price


def _encode_usage(terms: UsageTerms | None) -> Record | None:
    if terms is None:
        return None
    return {
        "price": encode_usage_price(terms.price),
        "freeQuantity": _dec(terms.free_quantity),
        "discountPercentage": _dec(terms.discount_percentage),
        "minimumAmount": _dec(terms.minimum_amount),
        "maximumAmount": _dec(terms.maximum_amount),
    }


def _decode_usage(record: Record | None) -> UsageTerms | None:
    if record is None:
        return None
    return UsageTerms(
        price=decode_usage_price(record["price"]),
        free_quantity=Decimal(record["freeQuantity"]),
        discount_percentage=Decimal(record["discountPercentage"]),
        minimum_amount=_num(record["minimumAmount"]),
        maximum_amount=_num(record["maximumAmount"]),
    )


def _encode_entitlement(template: EntitlementTemplate | None) -> Record | None:
    if template is None:
        return None
    return {
        "type": template.type,
        "limit": _dec(template.limit),
        "hard": template.hard,
        "usagePeriod": template.usage_period,
        "config": template.config,
    }


def _decode_entitlement(record: Record | None) -> EntitlementTemplate | None:
    if record is None:
        return None
    return EntitlementTemplate(
        type=record["type"],
        limit=_num(record["limit"]),
        hard=record["hard"],
        usage_period=record["usagePeriod"],
        config=record["config"],
    )


def _encode_card(card: RateCard) -> Record:
    flat = card.flat
    return {
        "key": card.key,
        "name": card.name,
        "featureKey": card.feature_key,
        "usage": _encode_usage(card.usage),
        "flat": None if flat is None else flat_to_record(flat),
        "billingCadence": card.billing_cadence,
        "entitlement": _encode_entitlement(card.entitlement),
        "description": card.description,
        "metadata": card.metadata,
    }


def _decode_card(record: Record) -> RateCard:
    flat = record["flat"]
    return RateCard(
        key=record["key"],
        name=record["name"],
        feature_key=record["featureKey"],
        usage=_decode_usage(record["usage"]),
        flat=None if flat is None else flat_from_record(flat),
        billing_cadence=record["billingCadence"],
        entitlement=_decode_entitlement(record["entitlement"]),
        description=record["description"],
        metadata=record["metadata"],
    )


def encode_plan(plan: Plan) -> Record:
    return {
        "name": plan.name,
        "currency": plan.currency,
        "billingCadence": plan.billing_cadence,
        "description": plan.description,
        "metadata": plan.metadata,
        "publishedUs": _us(plan.published_at),
        "archivedUs": _us(plan.archived_at),
        "phases": [
            {
                "key": phase.key,
                "name": phase.name,
                "duration": phase.duration,
                "rateCards": [_encode_card(c) for c in phase.rate_cards],
            }
            for phase in plan.phases
        ],
    }


def decode_plan(
    record: Record,
    *,
    id: str,
    key: str,
    version: int,
    status: Any,
    managed_by: str,
    created_us: int,
    updated_us: int,
) -> Plan:
    return Plan(
        id=id,
        key=key,
        version=version,
        name=record["name"],
        currency=record["currency"],
        billing_cadence=record["billingCadence"],
        phases=tuple(
            Phase(
                key=p["key"],
                name=p["name"],
                duration=p["duration"],
                rate_cards=tuple(_decode_card(c) for c in p["rateCards"]),
            )
            for p in record["phases"]
        ),
        status=status,
        description=record["description"],
        metadata=record["metadata"],
        managed_by=managed_by,
        created_at=from_micros(created_us),
        updated_at=from_micros(updated_us),
        published_at=_at(record["publishedUs"]),
        archived_at=_at(record["archivedUs"]),
    )


# -- customers and subscriptions ----------------------------------------------------------------------


def encode_customer(customer: Customer) -> Record:
    address = customer.billing_address
    return {
        "name": customer.name,
        "subjects": list(customer.subjects),
        "email": customer.email,
        "currency": customer.currency,
        "billingAddress": None
        if address is None
        else {
            "country": address.country,
            "postalCode": address.postal_code,
            "state": address.state,
            "city": address.city,
            "line1": address.line1,
            "line2": address.line2,
            "phoneNumber": address.phone_number,
        },
        "description": customer.description,
        "stripeCustomerId": customer.stripe_customer_id,
        "metadata": customer.metadata,
    }


def decode_customer(
    record: Record,
    *,
    id: str,
    key: str,
    managed_by: str,
    created_us: int,
    updated_us: int,
    deleted_us: int | None,
) -> Customer:
    address = record["billingAddress"]
    return Customer(
        id=id,
        key=key,
        name=record["name"],
        subjects=tuple(record["subjects"]),
        email=record["email"],
        currency=record["currency"],
        billing_address=None
        if address is None
        else Address(
            country=address["country"],
            postal_code=address["postalCode"],
            state=address["state"],
            city=address["city"],
            line1=address["line1"],
            line2=address["line2"],
            phone_number=address["phoneNumber"],
        ),
        description=record["description"],
        stripe_customer_id=record["stripeCustomerId"],
        metadata=record["metadata"],
        managed_by=managed_by,
        created_at=from_micros(created_us),
        updated_at=from_micros(updated_us),
        deleted_at=_at(deleted_us),
    )


def encode_subscription(subscription: Subscription) -> Record:
    return {
        "planKey": subscription.plan_key,
        "planVersion": subscription.plan_version,
        "currency": subscription.currency,
        "billingCadence": subscription.billing_cadence,
        "billingAnchorUs": to_micros(subscription.billing_anchor),
        "name": subscription.name,
        "description": subscription.description,
        "metadata": subscription.metadata,
        "canceledUs": _us(subscription.canceled_at),
        "replacedBy": subscription.replaced_by,
        "createdUs": _us(subscription.created_at),
        "updatedUs": _us(subscription.updated_at),
    }


def decode_subscription(
    record: Record, *, id: str, customer_id: str, plan_id: str, active_from_us: int, active_to_us: int | None
) -> Subscription:
    return Subscription(
        id=id,
        customer_id=customer_id,
        plan_id=plan_id,
        plan_key=record["planKey"],
        plan_version=record["planVersion"],
        currency=record["currency"],
        billing_cadence=record["billingCadence"],
        billing_anchor=from_micros(record["billingAnchorUs"]),
        active_from=from_micros(active_from_us),
        active_to=_at(active_to_us),
        name=record["name"],
        description=record["description"],
        metadata=record["metadata"],
        canceled_at=_at(record["canceledUs"]),
        replaced_by=record["replacedBy"],
        created_at=_at(record["createdUs"]),
        updated_at=_at(record["updatedUs"]),
    )
