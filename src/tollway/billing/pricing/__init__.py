"""Price models: one pure module per model (unit, tiered_graduated, tiered_volume, package, dynamic, flat), and
`usage.charge_usage`, which applies a usage line's terms around its model. Validation of price terms lives here.

Every function is exact: arithmetic runs in `exact_arithmetic()`, a decimal context that raises rather than
rounds, so 10^12 tokens at a 12-decimal price come out to the last digit. Rounding to the currency's minor unit
happens once, on the invoice line (`tollway.money.to_minor_units`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, localcontext

from tollway.billing.pricing.model import (
    DynamicPrice,
    FlatPrice,
    PackagePrice,
    Tier,
    TieredPrice,
    UnitPrice,
    UsageTerms,
)
from tollway.errors import ValidationError

# 100 significant digits hold any product of two 10^18-bounded, 12-place decimals and a 60-digit fraction.
EXACT_PRECISION = 100


def exact_arithmetic() -> AbstractContextManager[Context]:
    """A decimal context that never rounds silently: an inexact result raises `decimal.Inexact`."""
    return localcontext(
        Context(prec=EXACT_PRECISION, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact], Emax=999_999)
    )


def check_quantity(quantity: Decimal) -> None:
    """Pricing functions take a finite quantity >= 0."""
    if not quantity.is_finite() or quantity < 0:
        raise ValueError(f"a quantity to price must be a finite decimal >= 0, got {quantity}")


def _non_negative(value: Decimal, field: str, what: str = "must be >= 0") -> None:
    if not value.is_finite() or value < 0:
        raise ValidationError(f"{field} {what}", field=field)


def validate_tiers(tiers: Sequence[Tier], *, field: str) -> None:
    """Tiers of a tiered price, in order: at least one; `upTo` positive and strictly increasing; every tier but
    the last has an `upTo` and the last has none; unit and flat prices >= 0. `field` names the price
    (errors name e.g. f"{field}.tiers[1].upTo")."""
    if not tiers:
        raise ValidationError(f"{field}.tiers must list at least one tier", field=f"{field}.tiers")
    last = len(tiers) - 1
    previous: Decimal | None = None
    for i, tier in enumerate(tiers):
        here = f"{field}.tiers[{i}]"
        if tier.up_to is None:
            if i != last:
                raise ValidationError(
                    f"{here}.upTo is required: only the last tier may leave it out", field=f"{here}.upTo"
                )
        else:
            if i == last:
                raise ValidationError(
                    f"{here}.upTo must be left out: the last tier covers everything above the one before it",
                    field=f"{here}.upTo",
                )
            if not tier.up_to.is_finite() or tier.up_to <= 0:
                raise ValidationError(f"{here}.upTo must be > 0", field=f"{here}.upTo")
            if previous is not None and tier.up_to <= previous:
                raise ValidationError(
                    f"{here}.upTo must be greater than the previous tier's upTo ({previous})", field=f"{here}.upTo"
                )
            previous = tier.up_to
        _non_negative(tier.unit_price, f"{here}.unitPrice")
        _non_negative(tier.flat_price, f"{here}.flatPrice")


def validate_usage_terms(terms: UsageTerms, *, field: str) -> None:
    """A usage rate card's terms. `field` names the rate card (errors name e.g. f"{field}.price.amount",
    f"{field}.discounts.percentage", f"{field}.minimumAmount")."""
    price = terms.price
    if isinstance(price, UnitPrice):
        _non_negative(price.amount, f"{field}.price.amount")
    elif isinstance(price, TieredPrice):
        if price.mode not in ("graduated", "volume"):
            raise ValidationError(
                f"{field}.price.mode must be 'graduated' or 'volume', got {price.mode!r}", field=f"{field}.price.mode"
            )
        validate_tiers(price.tiers, field=f"{field}.price")
    elif isinstance(price, PackagePrice):
        _non_negative(price.amount, f"{field}.price.amount")
        per = price.quantity_per_package
        if not per.is_finite() or per <= 0:
            raise ValidationError(
                f"{field}.price.quantityPerPackage must be > 0", field=f"{field}.price.quantityPerPackage"
            )
    elif isinstance(price, DynamicPrice):
        _non_negative(price.multiplier, f"{field}.price.multiplier")
    else:
        raise ValidationError(f"{field}.price is not a usage price", field=f"{field}.price")
    _non_negative(terms.free_quantity, f"{field}.discounts.usage")
    percentage = terms.discount_percentage
    if not percentage.is_finite() or not 0 <= percentage <= 100:
        raise ValidationError(
            f"{field}.discounts.percentage must be between 0 and 100", field=f"{field}.discounts.percentage"
        )
    if terms.minimum_amount is not None:
        _non_negative(terms.minimum_amount, f"{field}.minimumAmount")
    if terms.maximum_amount is not None:
        _non_negative(terms.maximum_amount, f"{field}.maximumAmount")
    if (
        terms.minimum_amount is not None
        and terms.maximum_amount is not None
        and terms.minimum_amount > terms.maximum_amount
    ):
        raise ValidationError(
            f"{field}.minimumAmount must not exceed maximumAmount ({terms.maximum_amount})",
            field=f"{field}.minimumAmount",
        )


def validate_flat_price(price: FlatPrice, *, field: str) -> None:
    """A flat fee: amount >= 0, payment term in advance or in arrears. `field` names the price."""
    _non_negative(price.amount, f"{field}.amount")
    if price.payment_term not in ("in_advance", "in_arrears"):
        raise ValidationError(
            f"{field}.paymentTerm must be 'in_advance' or 'in_arrears', got {price.payment_term!r}",
            field=f"{field}.paymentTerm",
        )
