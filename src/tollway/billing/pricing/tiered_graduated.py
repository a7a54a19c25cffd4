"""Graduated tiers: each unit priced by the tier it falls in (`up_to` inclusive), like income tax brackets.

A tier's flat price is charged once, on entering it; the first tier is entered even at zero usage.
"""

from __future__ import annotations

from decimal import Decimal

from tollway.billing.pricing.model import TierCharge, TieredPrice
from tollway.billing.pricing.pricer import check_quantity
from tollway.money import exact_arithmetic


def price_graduated(quantity: Decimal, price: TieredPrice) -> tuple[Decimal, tuple[TierCharge, ...]]:
    """(amount, breakdown): one TierCharge per tier, in order; tiers not reached show quantity 0 and amount 0."""
    check_quantity(quantity)
    if price.mode != "graduated":
        raise ValueError(f"price_graduated needs a graduated price, got mode {price.mode!r}")
    charges: list[TierCharge] = []
    lower = Decimal(0)  # units below this bound were priced by earlier tiers
    with exact_arithmetic():
        for position, tier in enumerate(price.tiers, start=1):
            entered = position == 1 or quantity > lower
            upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
            in_tier = max(upper - lower, Decimal(0)) if entered else Decimal(0)
            flat = tier.flat_price if entered else Decimal(0)
            charges.append(
                TierCharge(
                    tier=position,
                    up_to=tier.up_to,
                    quantity=in_tier,
                    unit_price=tier.unit_price,
                    flat_price=flat,
                    amount=in_tier * tier.unit_price + flat,
                )
            )
            if tier.up_to is not None:
                lower = tier.up_to
        total = sum((charge.amount for charge in charges), Decimal(0))
    return total, tuple(charges)
