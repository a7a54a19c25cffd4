"""A usage line priced step by step, in this order, each step exact:

free quantity (`discounts.usage`) off the quantity -> price model on the billable quantity (its pricer, from the
registry) -> percentage discount -> maximum-spend cap -> minimum-spend top-up.
"""

from __future__ import annotations

from decimal import Decimal

from tollway.billing.pricing.model import UsageCharge, UsageTerms
from tollway.billing.pricing.pricer import check_quantity
from tollway.billing.pricing.registry import PRICERS, Pricers
from tollway.money import exact_arithmetic

_ZERO = Decimal(0)


def charge_usage(quantity: Decimal, terms: UsageTerms, *, pricers: Pricers = PRICERS) -> UsageCharge:
    """Price `quantity` (the feature's usage in the period, >= 0) under `terms`."""
    check_quantity(quantity)
    with exact_arithmetic():
        free = min(max(terms.free_quantity, _ZERO), quantity)
        billable = quantity - free
    model = pricers.of(terms.price).charge(billable, terms.price)
    priced = model.amount
    with exact_arithmetic():
        discount = priced * terms.discount_percentage / 100
        amount = priced - discount
        cut = _ZERO
        if terms.maximum_amount is not None and amount > terms.maximum_amount:
            cut = amount - terms.maximum_amount
            amount = terms.maximum_amount
        top_up = _ZERO
        if terms.minimum_amount is not None and amount < terms.minimum_amount:
            top_up = terms.minimum_amount - amount
            amount = terms.minimum_amount
    return UsageCharge(
        quantity=quantity,
        free_quantity=free,
        billable_quantity=billable,
        priced_amount=priced,
        discount_amount=discount,
        maximum_cut=cut,
        minimum_top_up=top_up,
        amount=amount,
        unit_price=model.unit_price,
        tiers=model.tiers,
        packages=model.packages,
    )


def describe_usage(
    charge: UsageCharge, terms: UsageTerms, name: str, currency: str, *, pricers: Pricers = PRICERS
) -> str:
    """An invoice line's description of `charge` (`name`: the feature's), in its price model's words."""
    return pricers.of(terms.price).describe(charge, terms.price, name, currency)
