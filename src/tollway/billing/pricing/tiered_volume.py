"""Volume tiers: every unit at the unit price of the tier the total falls in (`up_to` inclusive), plus that
tier's flat price. Zero usage falls in the first tier."""

from __future__ import annotations

from decimal import Decimal

from tollway.billing.pricing.model import Tier, TierCharge, TieredPrice
from tollway.billing.pricing.pricer import check_quantity
from tollway.money import exact_arithmetic


def volume_tier(quantity: Decimal, price: TieredPrice) -> tuple[int, Tier]:
    """The 1-based position and the tier the total `quantity` falls in."""
    check_quantity(quantity)
    if not price.tiers:
        raise ValueError("a tiered price needs at least one tier")
    for position, tier in enumerate(price.tiers, start=1):
        if tier.up_to is None or quantity <= tier.up_to:
            return position, tier
    return len(price.tiers), price.tiers[-1]


def price_volume(quantity: Decimal, price: TieredPrice) -> tuple[Decimal, tuple[TierCharge, ...]]:
    """(amount, breakdown): one TierCharge, for the tier used."""
    if price.mode != "volume":
        raise ValueError(f"price_volume needs a volume price, got mode {price.mode!r}")
    position, tier = volume_tier(quantity, price)
    with exact_arithmetic():
        amount = quantity * tier.unit_price + tier.flat_price
    charge = TierCharge(
        tier=position,
        up_to=tier.up_to,
        quantity=quantity,
        unit_price=tier.unit_price,
        flat_price=tier.flat_price,
        amount=amount,
    )
    return amount, (charge,)
