"""Package price: a fixed amount per started package of N units."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tollway.billing.pricing.model import ModelCharge, PackagePrice, UsageCharge
from tollway.billing.pricing.pricer import Pricer, WireFields, check_quantity, non_negative, positive, stored, wire
from tollway.money import exact_arithmetic, format_quantity, price_text


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


class PackagePricer:
    type = "package"
    price_class = PackagePrice
    wire_fields = frozenset({"amount", "quantityPerPackage"})
    config_fields = (frozenset({"amount", "quantity_per_package"}), frozenset[str]())

    def charge(self, quantity: Decimal, price: PackagePrice) -> ModelCharge:
        amount, packages = price_package(quantity, price)
        return ModelCharge(amount, unit_price=price.amount, packages=packages)

    def describe(self, charge: UsageCharge, price: PackagePrice, name: str, currency: str) -> str:
        quantity = format_quantity(charge.quantity)
        packages = format_quantity(charge.packages or Decimal(0))
        size = format_quantity(price.quantity_per_package)
        return f"{quantity} {name}: {packages} x {price_text(price.amount, currency)} per {size}"

    def label(self, price: PackagePrice, currency: str) -> str:
        return f"{price_text(price.amount, currency)} per {format_quantity(price.quantity_per_package)}"

    def validate(self, price: PackagePrice, *, field: str) -> None:
        non_negative(price.amount, f"{field}.amount")
        positive(price.quantity_per_package, f"{field}.quantityPerPackage")

    def to_wire(self, price: PackagePrice) -> dict[str, Any]:
        return {"amount": wire(price.amount), "quantityPerPackage": wire(price.quantity_per_package)}

    def from_wire(self, fields: WireFields) -> PackagePrice:
        return PackagePrice(
            amount=fields.req_decimal("amount"), quantity_per_package=fields.req_decimal("quantityPerPackage")
        )

    def to_record(self, price: PackagePrice) -> dict[str, Any]:
        return {"amount": stored(price.amount), "quantityPerPackage": stored(price.quantity_per_package)}

    def from_record(self, record: Mapping[str, Any]) -> PackagePrice:
        return PackagePrice(Decimal(record["amount"]), Decimal(record["quantityPerPackage"]))

    def from_config(self, values: Mapping[str, Any], *, field: str) -> PackagePrice:
        return PackagePrice(amount=values["amount"], quantity_per_package=values["quantity_per_package"])


PRICER: Pricer[PackagePrice] = PackagePricer()
