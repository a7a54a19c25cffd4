"""The rules of a usage rate card's terms: its price model's (its pricer's `validate`) and those around it."""

from __future__ import annotations

from tollway.billing.pricing.model import UsageTerms
from tollway.billing.pricing.pricer import in_range, non_negative
from tollway.billing.pricing.registry import PRICERS, Pricers
from tollway.errors import ValidationError


def validate_usage_terms(terms: UsageTerms, *, field: str, pricers: Pricers = PRICERS) -> None:
    """A usage rate card's terms. `field` names the rate card; errors name the API's fields, e.g.
    f"{field}.price.amount", f"{field}.price.minimumAmount", f"{field}.discounts.percentage.percentage",
    f"{field}.discounts.usage.quantity"."""
    price = terms.price
    where = f"{field}.price"
    if not pricers.knows(price):
        raise ValidationError(f"{where} is not a usage price", field=where)
    pricers.of(price).validate(price, field=where)
    non_negative(terms.free_quantity, f"{field}.discounts.usage.quantity")
    percentage = f"{field}.discounts.percentage.percentage"
    if not terms.discount_percentage.is_finite() or not 0 <= terms.discount_percentage <= 100:
        raise ValidationError(f"{percentage} must be between 0 and 100", field=percentage)
    in_range(terms.discount_percentage, percentage)
    if terms.minimum_amount is not None:
        non_negative(terms.minimum_amount, f"{where}.minimumAmount")
    if terms.maximum_amount is not None:
        non_negative(terms.maximum_amount, f"{where}.maximumAmount")
    if (
        terms.minimum_amount is not None
        and terms.maximum_amount is not None
        and terms.minimum_amount > terms.maximum_amount
    ):
        raise ValidationError(
            f"{where}.minimumAmount must not exceed maximumAmount ({terms.maximum_amount})",
            field=f"{where}.minimumAmount",
        )
