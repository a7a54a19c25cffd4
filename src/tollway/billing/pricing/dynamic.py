"""Dynamic (cost-plus) price: the quantity is itself money, such as the provider cost in USD, times a multiplier."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tollway.billing.pricing.model import DynamicPrice, ModelCharge, UsageCharge
from tollway.billing.pricing.pricer import Pricer, WireFields, check_quantity, non_negative, stored, wire
from tollway.money import decimal_text, exact_arithmetic, format_quantity, price_text


def price_dynamic(quantity: Decimal, price: DynamicPrice) -> Decimal:
    """quantity x multiplier, exact."""
    check_quantity(quantity)
    with exact_arithmetic():
        return quantity * price.multiplier


class DynamicPricer:
    type = "dynamic"
    price_class = DynamicPrice
    wire_fields = frozenset({"multiplier"})
    config_fields = (frozenset({"multiplier"}), frozenset[str]())

    def charge(self, quantity: Decimal, price: DynamicPrice) -> ModelCharge:
        return ModelCharge(price_dynamic(quantity, price))

    def describe(self, charge: UsageCharge, price: DynamicPrice, name: str, currency: str) -> str:
        return f"{price_text(charge.quantity, currency)} {name} x {decimal_text(price.multiplier)}"

    def label(self, price: DynamicPrice, currency: str) -> str:
        return f"provider cost × {format_quantity(price.multiplier)}"

    def validate(self, price: DynamicPrice, *, field: str) -> None:
        non_negative(price.multiplier, f"{field}.multiplier")

    def to_wire(self, price: DynamicPrice) -> dict[str, Any]:
        return {"multiplier": wire(price.multiplier)}

    def from_wire(self, fields: WireFields) -> DynamicPrice:
        multiplier = fields.decimal("multiplier")  # OpenMeter's default: the cost as it is
        return DynamicPrice(multiplier=Decimal(1) if multiplier is None else multiplier)

    def to_record(self, price: DynamicPrice) -> dict[str, Any]:
        return {"multiplier": stored(price.multiplier)}

    def from_record(self, record: Mapping[str, Any]) -> DynamicPrice:
        return DynamicPrice(Decimal(record["multiplier"]))

    def from_config(self, values: Mapping[str, Any], *, field: str) -> DynamicPrice:
        return DynamicPrice(multiplier=values["multiplier"])


PRICER: Pricer[DynamicPrice] = DynamicPricer()
