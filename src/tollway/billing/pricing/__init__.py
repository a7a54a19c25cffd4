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
from tollway.money import parse_decimal

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


def _non_negative(value: Decimal, field: str) -> None:
    if not value.is_finite() or value < 0:
        raise ValidationError(f"{field} must be >= 0", field=field)
    _in_range(value, field)


def _in_range(value: Decimal, field: str) -> None:
    """At most 12 decimal places and 10^18 in magnitude, as every price and quantity on the wire."""
    parse_decimal(value, field=field, minimum=None)


def validate_tiers(tiers: Sequence[Tier], *, field: str) -> None:
    """Tiers of a tiered price, in order: at least one; `upTo` positive and strictly increasing; every tier but
    the last has an `upTo` and the last has none; unit and flat prices >= 0. `field` names the price; errors
    name the API's fields, e.g. f"{field}.tiers[1].upToAmount", f"{field}.tiers[0].unitPrice.amount"."""
    if not tiers:
        raise ValidationError(f"{field}.tiers must list at least one tier", field=f"{field}.tiers")
    last = len(tiers) - 1
    previous: Decimal | None = None
    for i, tier in enumerate(tiers):
        here = f"{field}.tiers[{i}]"
        up_to = f"{here}.upToAmount"
        if tier.up_to is None:
            if i != last:
                raise ValidationError(f"{up_to} is required: only the last tier may leave it out", field=up_to)
        else:
            if i == last:
                raise ValidationError(
                    f"{up_to} must be left out: the last tier covers everything above the one before it",
                    field=up_to,
                )
            if not tier.up_to.is_finite() or tier.up_to <= 0:
                raise ValidationError(f"{up_to} must be > 0", field=up_to)
            if previous is not None and tier.up_to <= previous:
                raise ValidationError(
                    f"{up_to} must be greater than the previous tier's upTo ({previous})", field=up_to
                )
            _in_range(tier.up_to, up_to)
            previous = tier.up_to
        _non_negative(tier.unit_price, f"{here}.unitPrice.amount")
        _non_negative(tier.flat_price, f"{here}.flatPrice.amount")


def validate_usage_terms(terms: UsageTerms, *, field: str) -> None:
    """A usage rate card's terms. `field` names the rate card; errors name the API's fields, e.g.
    f"{field}.price.amount", f"{field}.price.minimumAmount", f"{field}.discounts.percentage.percentage",
    f"{field}.discounts.usage.quantity"."""
    price = terms.price
    where = f"{field}.price"
    if isinstance(price, UnitPrice):
        _non_negative(price.amount, f"{where}.amount")
    elif isinstance(price, TieredPrice):
        if price.mode not in ("graduated", "volume"):
            raise ValidationError(
                f"{where}.mode must be 'graduated' or 'volume', got {price.mode!r}", field=f"{where}.mode"
            )
        validate_tiers(price.tiers, field=where)
    elif isinstance(price, PackagePrice):
        _non_negative(price.amount, f"{where}.amount")
        per, per_field = price.quantity_per_package, f"{where}.quantityPerPackage"
        if not per.is_finite() or per <= 0:
            raise ValidationError(f"{per_field} must be > 0", field=per_field)
        _in_range(per, per_field)
    elif isinstance(price, DynamicPrice):
        _non_negative(price.multiplier, f"{where}.multiplier")
    else:
        raise ValidationError(f"{where} is not a usage price", field=where)
    _non_negative(terms.free_quantity, f"{field}.discounts.usage.quantity")
    percentage = f"{field}.discounts.percentage.percentage"
    if not terms.discount_percentage.is_finite() or not 0 <= terms.discount_percentage <= 100:
        raise ValidationError(f"{percentage} must be between 0 and 100", field=percentage)
    _in_range(terms.discount_percentage, percentage)
    if terms.minimum_amount is not None:
        _non_negative(terms.minimum_amount, f"{where}.minimumAmount")
    if terms.maximum_amount is not None:
        _non_negative(terms.maximum_amount, f"{where}.maximumAmount")
    if (
        terms.minimum_amount is not None
        and terms.maximum_amount is not None
        and terms.minimum_amount > terms.maximum_amount
    ):
        raise ValidationError(
            f"{where}.minimumAmount must not exceed maximumAmount ({terms.maximum_amount})",
            field=f"{where}.minimumAmount",
        )


def validate_flat_price(price: FlatPrice, *, field: str) -> None:
    """A flat fee: amount >= 0, payment term in advance or in arrears. `field` names the price."""
    _non_negative(price.amount, f"{field}.amount")
    if price.payment_term not in ("in_advance", "in_arrears"):
        raise ValidationError(
            f"{field}.paymentTerm must be 'in_advance' or 'in_arrears', got {price.payment_term!r}",
            field=f"{field}.paymentTerm",
        )
