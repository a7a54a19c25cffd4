"""Unit price: every unit at the same price."""

from __future__ import annotations

from decimal import Decimal

from tollway.billing.pricing import check_quantity, exact_arithmetic
from tollway.billing.pricing.model import UnitPrice


def price_unit(quantity: Decimal, price: UnitPrice) -> Decimal:
    """quantity x amount, exact."""
    check_quantity(quantity)
    with exact_arithmetic():
        return quantity * price.amount
