"""The price terms a rate card carries. Values only: each price model's pricer (its charge, description,
validation and codecs) lives in its own module beside this, registered by price type in `registry.py`.

Every amount and quantity is an exact `Decimal` (prices may carry up to 12 decimal places). Amounts are
in the plan's currency, unrounded: an invoice line rounds once, to the currency's minor unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Literal, Protocol

PaymentTerm = Literal["in_advance", "in_arrears"]
TierMode = Literal["graduated", "volume"]


class UsagePrice(Protocol):
    """A usage price model's terms: a frozen value; `type` is its price type on the wire, in the config file and
    in the store, and names its pricer (`tollway.billing.pricing.registry`)."""

    @property
    def type(self) -> str: ...


@dataclass(frozen=True, slots=True)
class UnitPrice:
    """`amount` per unit of the feature's quantity."""

    type: ClassVar[str] = "unit"
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Tier:
    """`up_to` is inclusive; the last tier has none. `flat_price` is charged once when the tier applies."""

    up_to: Decimal | None
    unit_price: Decimal = Decimal(0)
    flat_price: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class TieredPrice:
    """Graduated: each unit priced by the tier it falls in. Volume: every unit at the tier the total falls in."""

    type: ClassVar[str] = "tiered"
    mode: TierMode
    tiers: tuple[Tier, ...]


@dataclass(frozen=True, slots=True)
class PackagePrice:
    """`amount` per started package of `quantity_per_package` units: ceil(quantity / per package) x amount."""

    type: ClassVar[str] = "package"
    amount: Decimal
    quantity_per_package: Decimal


@dataclass(frozen=True, slots=True)
class DynamicPrice:
    """The quantity is itself money (e.g. the provider cost in USD): amount = quantity x multiplier."""

    type: ClassVar[str] = "dynamic"
    multiplier: Decimal


@dataclass(frozen=True, slots=True)
class FlatPrice:
    """A fixed fee per billing period (or once, when the rate card has no billing cadence)."""

    amount: Decimal
    payment_term: PaymentTerm = "in_advance"


Price = UsagePrice | FlatPrice


@dataclass(frozen=True, slots=True)
class UsageTerms:
    """What applies to a usage-based line around its price model, in this order:
    free quantity off the quantity -> price model -> percentage discount -> maximum cap -> minimum top-up."""

    price: UsagePrice
    free_quantity: Decimal = Decimal(0)  # discounts.usage: units taken off first
    discount_percentage: Decimal = Decimal(0)  # 0..100, off the priced amount
    minimum_amount: Decimal | None = None  # per period: the line is topped up to it
    maximum_amount: Decimal | None = None  # per period: the line is capped at it


@dataclass(frozen=True, slots=True)
class TierCharge:
    """One tier's share of a tiered line, exact (tier breakdowns are shown unrounded)."""

    tier: int  # 1-based position in the price's tiers
    up_to: Decimal | None
    quantity: Decimal  # units priced in this tier (volume: all units, in the tier the total falls in)
    unit_price: Decimal
    flat_price: Decimal  # charged when the tier applies (0 when it does not)
    amount: Decimal  # quantity x unit_price + flat_price


@dataclass(frozen=True, slots=True)
class ModelCharge:
    """What a price model makes of a billable quantity, exact: the amount and what the invoice line shows of it."""

    amount: Decimal
    unit_price: Decimal | None = None  # unit and volume prices; package: the package amount
    tiers: tuple[TierCharge, ...] = ()
    packages: Decimal | None = None  # package: packages started


@dataclass(frozen=True, slots=True)
class UsageCharge:
    """A usage line priced step by step; every amount exact (the invoice line rounds `amount` once)."""

    quantity: Decimal  # metered in the period
    free_quantity: Decimal  # taken off first (at most `quantity`)
    billable_quantity: Decimal  # quantity - free_quantity
    priced_amount: Decimal  # the price model on the billable quantity
    discount_amount: Decimal  # percentage discount off priced_amount (>= 0)
    maximum_cut: Decimal  # taken off by the maximum spend (>= 0)
    minimum_top_up: Decimal  # added by the minimum spend (>= 0)
    amount: Decimal  # priced - discount - cut + top-up
    unit_price: Decimal | None = None  # unit and volume prices; package: the package amount
    tiers: tuple[TierCharge, ...] = ()
    packages: Decimal | None = None  # package: packages started
