"""A usage line priced step by step, in this order, each step exact:

free quantity (`discounts.usage`) off the quantity -> price model on the billable quantity -> percentage
discount -> maximum-spend cap -> minimum-spend top-up.
"""

from __future__ import annotations

from decimal import Decimal

from tollway.billing.pricing import check_quantity, exact_arithmetic
from tollway.billing.pricing.dynamic import price_dynamic
from tollway.billing.pricing.model import (
    DynamicPrice,
    PackagePrice,
    TierCharge,
    TieredPrice,
    UnitPrice,
    UsageCharge,
    UsagePrice,
    UsageTerms,
)
from tollway.billing.pricing.package import price_package
from tollway.billing.pricing.tiered_graduated import price_graduated
from tollway.billing.pricing.tiered_volume import price_volume
from tollway.billing.pricing.unit import price_unit

_ZERO = Decimal(0)


def _price(
    quantity: Decimal, price: UsagePrice
) -> tuple[Decimal, Decimal | None, tuple[TierCharge, ...], Decimal | None]:
    """(priced amount, unit price, tier breakdown, packages) for one price model."""
    if isinstance(price, UnitPrice):
        return price_unit(quantity, price), price.amount, (), None
    if isinstance(price, TieredPrice):
        if price.mode == "graduated":
            amount, tiers = price_graduated(quantity, price)
            return amount, None, tiers, None
        amount, tiers = price_volume(quantity, price)
        return amount, tiers[0].unit_price, tiers, None
    if isinstance(price, PackagePrice):
        amount, packages = price_package(quantity, price)
        return amount, price.amount, (), packages
    if isinstance(price, DynamicPrice):
        return price_dynamic(quantity, price), None, (), None
    raise TypeError(f"not a usage price: {price!r}")


def charge_usage(quantity: Decimal, terms: UsageTerms) -> UsageCharge:
    """Price `quantity` (the feature's usage in the period, >= 0) under `terms`."""
    check_quantity(quantity)
    with exact_arithmetic():
        free = min(max(terms.free_quantity, _ZERO), quantity)
        billable = quantity - free
    priced, unit_price, tiers, packages = _price(billable, terms.price)
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
        unit_price=unit_price,
        tiers=tiers,
        packages=packages,
    )
