"""The one interface every usage price model implements (`Pricer`), and what the models share.

A price model is one module: its terms (a frozen value with a `type`), and its pricer — the charge (pure, exact,
no I/O), the words an invoice line and the dashboard show, the validation of its terms, and its codec hooks: the
management API's JSON (`to_wire`/`from_wire`), the SQL store's record (`to_record`/`from_record`) and the config
file (`config_fields`/`from_config`). `registry.PRICERS` maps each price type to its pricer; the codecs, the
config file, validation and rating ask it rather than testing the type themselves.

The codec hooks see only their model's own fields: the usage line's terms around it (free quantity, discount,
minimum and maximum spend) and the price's `type` are read and written by the caller, alike for every model.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from tollway.billing.pricing.model import ModelCharge, UsageCharge
from tollway.errors import ValidationError
from tollway.money import decimal_text, parse_decimal

P = TypeVar("P")


class WireFields(Protocol):
    """A JSON object of the management API being decoded (`tollway.api.wire.Obj`): typed reads that name the
    field they read (`rateCards[1].price.tiers[0].upToAmount`) in every refusal; unknown fields refused."""

    path: str

    def at(self, name: str) -> str: ...

    def get(self, name: str) -> Any: ...

    def has(self, name: str) -> bool: ...

    def decimal(self, name: str) -> Decimal | None: ...

    def req_decimal(self, name: str) -> Decimal: ...

    def choice(self, name: str, options: Sequence[str]) -> str: ...

    def obj(self, name: str, allowed: Collection[str]) -> WireFields | None: ...

    def objects(self, name: str, allowed: Collection[str]) -> Iterable[WireFields]: ...


class Pricer(Protocol[P]):
    """One usage price model (`P`: its terms)."""

    @property
    def type(self) -> str:
        """The price type: `type` of the price on the wire, in the config file and in the store."""
        ...

    @property
    def price_class(self) -> builtins.type[P]: ...

    @property
    def wire_fields(self) -> frozenset[str]:
        """The fields of the API's price object this model reads (besides type, minimumAmount, maximumAmount)."""
        ...

    @property
    def config_fields(self) -> tuple[frozenset[str], frozenset[str]]:
        """(required, optional) fields of a config file's `price` of this type, besides `type`."""
        ...

    def charge(self, quantity: Decimal, price: P) -> ModelCharge:
        """The billable `quantity` (finite, >= 0) priced, exact (`tollway.money.exact_arithmetic`)."""
        ...

    def describe(self, charge: UsageCharge, price: P, name: str, currency: str) -> str:
        """An invoice line's description: "1,000 Output tokens x $0.00001" (`name`: the feature's)."""
        ...

    def label(self, price: P, currency: str) -> str:
        """The price in a few words, for lists: "$0.000003 per unit", "graduated tiers (2)"."""
        ...

    def validate(self, price: P, *, field: str) -> None:
        """Raise ValidationError naming the API's field below `field` (the price), e.g. f"{field}.amount"."""
        ...

    def to_wire(self, price: P) -> dict[str, Any]:
        """The model's fields in the API's JSON (camelCase, decimals as decimal strings)."""
        ...

    def from_wire(self, fields: WireFields) -> P:
        """The model's terms from the API's price object (its fields' shapes and types; `validate` checks the
        rules)."""
        ...

    def to_record(self, price: P) -> dict[str, Any]:
        """The model's fields as the store keeps them (decimals as exact strings: `stored`)."""
        ...

    def from_record(self, record: Mapping[str, Any]) -> P: ...

    def from_config(self, values: Mapping[str, Any], *, field: str) -> P:
        """The model's terms from a config file's price (`values`: its given fields, plain: Decimals, strings,
        lists of dicts). May raise ValidationError (the API's field names below `field`) for what the file's
        schema cannot check alone."""
        ...


# -- what the models share -----------------------------------------------------------------------------


def check_quantity(quantity: Decimal) -> None:
    """Pricing functions take a finite quantity >= 0."""
    if not quantity.is_finite() or quantity < 0:
        raise ValueError(f"a quantity to price must be a finite decimal >= 0, got {quantity}")


def non_negative(value: Decimal, field: str) -> None:
    if not value.is_finite() or value < 0:
        raise ValidationError(f"{field} must be >= 0", field=field)
    in_range(value, field)


def positive(value: Decimal, field: str) -> None:
    if not value.is_finite() or value <= 0:
        raise ValidationError(f"{field} must be > 0", field=field)
    in_range(value, field)


def in_range(value: Decimal, field: str) -> None:
    """At most 12 decimal places and 10^18 in magnitude, as every price and quantity on the wire."""
    parse_decimal(value, field=field, minimum=None)


def wire(value: Decimal | None) -> str | None:
    """A decimal on the API's wire: a plain decimal string, no exponent ("0.000003"); None stays None."""
    return None if value is None else decimal_text(value)


def stored(value: Decimal | None) -> str | None:
    """A decimal in a stored record: its exact digits and exponent ("10.50", "1E+6"); None stays None."""
    return None if value is None else str(value)  # str() keeps the exact digits and exponent


def stored_number(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)
