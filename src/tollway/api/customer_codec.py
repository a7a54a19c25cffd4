"""Customers and entitlement values on the wire (OpenMeter's shapes), decoded with the offending field named."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tollway.api.wire import Json, Obj, optional_decimal, optional_time
from tollway.billing.customers import Address, Customer
from tollway.billing.entitlements import EntitlementValue
from tollway.billing.subscriptions import Subscription
from tollway.errors import ValidationError
from tollway.money import decimal_text


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
    email = obj.text("primaryEmail")  # its form and the address's country are the catalog service's checks
    address = obj.obj("billingAddress", _ADDRESS)
    billing_address = None
    if address is not None:
        billing_address = Address(
            country=address.text("country"),
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
        "createdAt": optional_time(customer.created_at),
        "updatedAt": optional_time(customer.updated_at),
        "deletedAt": optional_time(customer.deleted_at),
    }
    if subscriptions is not None:
        out["subscriptions"] = subscriptions
    return out


def encode_entitlement_value(value: EntitlementValue) -> Json:
    encoded = {
        "hasAccess": value.has_access,
        "balance": optional_decimal(value.balance),
        "usage": optional_decimal(value.usage),
        "overage": optional_decimal(value.overage),
        "config": None if value.config is None else json.dumps(value.config),
    }
    if value.total_available_grant_amount is not None:  # a metered entitlement with unit grants
        encoded["totalAvailableGrantAmount"] = decimal_text(value.total_available_grant_amount)
    return encoded
