"""Tiered price: graduated (each unit priced by the tier it falls in: `tiered_graduated.py`) or volume (every
unit at the tier the total falls in: `tiered_volume.py`). The pricer, the tiers' rules and their codecs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from tollway.billing.pricing.model import ModelCharge, Tier, TieredPrice, TierMode, UsageCharge
from tollway.billing.pricing.pricer import Pricer, WireFields, in_range, non_negative, stored, stored_number, wire
from tollway.billing.pricing.tiered_graduated import price_graduated
from tollway.billing.pricing.tiered_volume import price_volume
from tollway.errors import ValidationError
from tollway.money import format_quantity, price_text

TIER_MODES: tuple[TierMode, ...] = ("graduated", "volume")


def validate_tiers(tiers: Sequence[Tier], *, field: str) -> None:
    """Tiers of a tiered price, in order: at least one; `upTo` positive and strictly increasing; every tier but
    the last has an `upTo` and the last has none; unit and flat prices >= 0. `field` names the price; errors
    name the API's fields, e.g. f"{field}.tiers[1].upToAmount", f"{field}.tiers[0].unitPrice.amount"."""
    if not tiers:
        raise ValidationError(f"{field}.tiers must list at least one tier", field=f"{field}.tiers")
    last = len(tiers) - 1
    previous: Decimal | None = None
    for i, tier in enumerate(tiers):
        here = f"{field}.tiers[{i}]"
        up_to = f"{here}.upToAmount"
        if tier.up_to is None:
            if i != last:
                raise ValidationError(f"{up_to} is required: only the last tier may leave it out", field=up_to)
        else:
            if i == last:
                raise ValidationError(
                    f"{up_to} must be left out: the last tier covers everything above the one before it",
                    field=up_to,
                )
            if not tier.up_to.is_finite() or tier.up_to <= 0:
                raise ValidationError(f"{up_to} must be > 0", field=up_to)
            if previous is not None and tier.up_to <= previous:
                raise ValidationError(
                    f"{up_to} must be greater than the previous tier's upTo ({previous})", field=up_to
                )
            in_range(tier.up_to, up_to)
            previous = tier.up_to
        non_negative(tier.unit_price, f"{here}.unitPrice.amount")
        non_negative(tier.flat_price, f"{here}.flatPrice.amount")


class TieredPricer:
    type = "tiered"
    price_class = TieredPrice
    wire_fields = frozenset({"mode", "tiers"})
    config_fields = (frozenset({"mode", "tiers"}), frozenset[str]())

    def charge(self, quantity: Decimal, price: TieredPrice) -> ModelCharge:
        if price.mode == "graduated":
            amount, tiers = price_graduated(quantity, price)
            return ModelCharge(amount, tiers=tiers)
        amount, tiers = price_volume(quantity, price)
        return ModelCharge(amount, unit_price=tiers[0].unit_price, tiers=tiers)

    def describe(self, charge: UsageCharge, price: TieredPrice, name: str, currency: str) -> str:
        quantity = format_quantity(charge.quantity)
        if price.mode == "volume" and charge.tiers:
            tier = charge.tiers[0]
            return f"{quantity} {name} x {price_text(tier.unit_price, currency)} (volume tier {tier.tier})"
        return f"{quantity} {name} (graduated tiers)"

    def label(self, price: TieredPrice, currency: str) -> str:
        return f"{price.mode} tiers ({len(price.tiers)})"

    def validate(self, price: TieredPrice, *, field: str) -> None:
        if price.mode not in TIER_MODES:
            raise ValidationError(
                f"{field}.mode must be 'graduated' or 'volume', got {price.mode!r}", field=f"{field}.mode"
            )
        validate_tiers(price.tiers, field=field)

    def to_wire(self, price: TieredPrice) -> dict[str, Any]:
        return {
            "mode": price.mode,
            "tiers": [
                {
                    "upToAmount": wire(tier.up_to),
                    "unitPrice": {"type": "unit", "amount": wire(tier.unit_price)},
                    "flatPrice": {"type": "flat", "amount": wire(tier.flat_price)},
                }
                for tier in price.tiers
            ],
        }

    def from_wire(self, fields: WireFields) -> TieredPrice:
        mode: TierMode = "volume" if fields.choice("mode", TIER_MODES) == "volume" else "graduated"
        tiers: list[Tier] = []
        for tier in fields.objects("tiers", {"upToAmount", "unitPrice", "flatPrice"}):
            up_to = tier.decimal("upToAmount")
            unit, flat = tier.obj("unitPrice", {"type", "amount"}), tier.obj("flatPrice", {"type", "amount"})
            if unit is None and flat is None:
                raise ValidationError(f"{tier.path} needs a unitPrice or a flatPrice", field=tier.path)
            if unit is not None:
                unit.choice("type", ("unit",))
            if flat is not None:
                flat.choice("type", ("flat",))
            tiers.append(
                Tier(
                    up_to=up_to,
                    unit_price=unit.req_decimal("amount") if unit is not None else Decimal(0),
                    flat_price=flat.req_decimal("amount") if flat is not None else Decimal(0),
                )
            )
        return TieredPrice(mode=mode, tiers=tuple(tiers))

    def to_record(self, price: TieredPrice) -> dict[str, Any]:
        return {
            "mode": price.mode,
            "tiers": [
                {"upTo": stored(t.up_to), "unitPrice": stored(t.unit_price), "flatPrice": stored(t.flat_price)}
                for t in price.tiers
            ],
        }

    def from_record(self, record: Mapping[str, Any]) -> TieredPrice:
        return TieredPrice(
            mode=record["mode"],
            tiers=tuple(
                Tier(
                    up_to=stored_number(t["upTo"]),
                    unit_price=Decimal(t["unitPrice"]),
                    flat_price=Decimal(t["flatPrice"]),
                )
                for t in record["tiers"]
            ),
        )

    def from_config(self, values: Mapping[str, Any], *, field: str) -> TieredPrice:
        """The file's tiers ({up_to, unit_price, flat_price}) in order, checked as the API's are."""
        tiers = tuple(
            Tier(
                up_to=t.get("up_to"),
                unit_price=t.get("unit_price", Decimal(0)),
                flat_price=t.get("flat_price", Decimal(0)),
            )
            for t in values["tiers"]
        )
        validate_tiers(tiers, field=field)
        return TieredPrice(mode=values["mode"], tiers=tiers)


PRICER: Pricer[TieredPrice] = TieredPricer()
