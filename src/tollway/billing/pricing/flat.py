"""Flat fee: a fixed amount per billing period, prorated by exact duration when the period is cut short.

A flat fee is not a usage price model (it prices no quantity, and it sits on a rate card of its own kind: a
`flat_fee` card, with a payment term and no discounts): it is not in the registry, but its module offers the
same kind of hooks for the codecs: its rules, its API JSON and its stored record.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tollway.billing.pricing.model import FlatPrice
from tollway.billing.pricing.pricer import WireFields, non_negative, stored, wire
from tollway.errors import ValidationError
from tollway.money import exact_arithmetic

PAYMENT_TERMS = ("in_advance", "in_arrears")


def price_flat(price: FlatPrice, fraction: Decimal = Decimal(1)) -> Decimal:
    """amount x fraction (the share of the period billed, 0..1; see `tollway.billing.periods.fraction`)."""
    if not fraction.is_finite() or not 0 <= fraction <= 1:
        raise ValueError(f"a flat fee's fraction must be between 0 and 1, got {fraction}")
    with exact_arithmetic():
        return price.amount * fraction


def validate_flat_price(price: FlatPrice, *, field: str) -> None:
    """A flat fee: amount >= 0, payment term in advance or in arrears. `field` names the price."""
    non_negative(price.amount, f"{field}.amount")
    if price.payment_term not in PAYMENT_TERMS:
        raise ValidationError(
            f"{field}.paymentTerm must be 'in_advance' or 'in_arrears', got {price.payment_term!r}",
            field=f"{field}.paymentTerm",
        )


def flat_to_wire(price: FlatPrice) -> dict[str, Any]:
    return {"type": "flat", "amount": wire(price.amount), "paymentTerm": price.payment_term}


def flat_from_wire(fields: WireFields) -> FlatPrice:
    """The API's flat price ({type: flat, amount, paymentTerm?}; in advance unless it says in arrears)."""
    term = fields.get("paymentTerm")
    in_arrears = term is not None and fields.choice("paymentTerm", PAYMENT_TERMS) == "in_arrears"
    return FlatPrice(amount=fields.req_decimal("amount"), payment_term="in_arrears" if in_arrears else "in_advance")


def flat_to_record(price: FlatPrice) -> dict[str, Any]:
    return {"amount": stored(price.amount), "paymentTerm": price.payment_term}


def flat_from_record(record: Mapping[str, Any]) -> FlatPrice:
    return FlatPrice(Decimal(record["amount"]), record["paymentTerm"])
