"""Package price: a fixed amount per started package of N units."""

from __future__ import annotations

from decimal import Decimal

from tollway.billing.pricing import check_quantity, exact_arithmetic
from tollway.billing.pricing.model import PackagePrice


def packages_for(quantity: Decimal, quantity_per_package: Decimal) -> Decimal:
    """ceil(quantity / quantity_per_package): a started package counts whole; 0 units start none."""
    check_quantity(quantity)
    if not quantity_per_package.is_finite() or quantity_per_package <= 0:
        raise ValueError(f"quantity_per_package must be > 0, got {quantity_per_package}")
    with exact_arithmetic():
        whole, rest = divmod(quantity, quantity_per_package)
        return whole + 1 if rest else whole


def price_package(quantity: Decimal, price: PackagePrice) -> tuple[Decimal, Decimal]:
    """(amount, packages) with packages = ceil(quantity / quantity_per_package) and amount = packages x amount."""
    packages = packages_for(quantity, price.quantity_per_package)
    with exact_arithmetic():
        return packages * price.amount, packages
