"""Dynamic (cost-plus) price: the quantity is itself money, such as the provider cost in USD, times a multiplier."""

from __future__ import annotations

from decimal import Decimal

from tollway.billing.pricing import check_quantity, exact_arithmetic
from tollway.billing.pricing.model import DynamicPrice


def price_dynamic(quantity: Decimal, price: DynamicPrice) -> Decimal:
    """quantity x multiplier, exact."""
    check_quantity(quantity)
    with exact_arithmetic():
        return quantity * price.multiplier
