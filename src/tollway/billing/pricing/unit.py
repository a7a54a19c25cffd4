"""Unit price: every unit at the same price."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tollway.billing.pricing.model import ModelCharge, UnitPrice, UsageCharge
from tollway.billing.pricing.pricer import Pricer, WireFields, check_quantity, non_negative, stored, wire
from tollway.money import exact_arithmetic, format_quantity, price_text


def price_unit(quantity: Decimal, price: UnitPrice) -> Decimal:
    """quantity x amount, exact."""
    check_quantity(quantity)
    with exact_arithmetic():
        return quantity * price.amount


class UnitPricer:
    type = "unit"
    price_class = UnitPrice
    wire_fields = frozenset({"amount"})
    config_fields = (frozenset({"amount"}), frozenset[str]())

    def charge(self, quantity: Decimal, price: UnitPrice) -> ModelCharge:
        return ModelCharge(price_unit(quantity, price), unit_price=price.amount)

    def describe(self, charge: UsageCharge, price: UnitPrice, name: str, currency: str) -> str:
        return f"{format_quantity(charge.quantity)} {name} x {price_text(price.amount, currency)}"

    def label(self, price: UnitPrice, currency: str) -> str:
        return f"{price_text(price.amount, currency)} per unit"

    def validate(self, price: UnitPrice, *, field: str) -> None:
        non_negative(price.amount, f"{field}.amount")

    def to_wire(self, price: UnitPrice) -> dict[str, Any]:
        return {"amount": wire(price.amount)}

    def from_wire(self, fields: WireFields) -> UnitPrice:
        return UnitPrice(amount=fields.req_decimal("amount"))

    def to_record(self, price: UnitPrice) -> dict[str, Any]:
        return {"amount": stored(price.amount)}

    def from_record(self, record: Mapping[str, Any]) -> UnitPrice:
        return UnitPrice(Decimal(record["amount"]))

    def from_config(self, values: Mapping[str, Any], *, field: str) -> UnitPrice:
        return UnitPrice(amount=values["amount"])


PRICER: Pricer[UnitPrice] = UnitPricer()
