"""Flat fee: a fixed amount per billing period, prorated by exact duration when the period is cut short."""

from __future__ import annotations

from decimal import Decimal

from tollway.billing.pricing import exact_arithmetic
from tollway.billing.pricing.model import FlatPrice


def price_flat(price: FlatPrice, fraction: Decimal = Decimal(1)) -> Decimal:
    """amount x fraction (the share of the period billed, 0..1; see `tollway.billing.periods.fraction`)."""
    if not fraction.is_finite() or not 0 <= fraction <= 1:
        raise ValueError(f"a flat fee's fraction must be between 0 and 1, got {fraction}")
    with exact_arithmetic():
        return price.amount * fraction
