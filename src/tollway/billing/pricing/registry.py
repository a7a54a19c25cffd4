"""The price types Tollway knows, each with its pricer: `PRICERS`, read by the codecs (API, store), the config
file, validation and rating, none of which tests a price's type itself.

Adding a price model: a new module beside this one with its terms (a frozen dataclass with a `type`) and its
pricer (`pricer.Pricer`), and its line in `BUILT_IN` (docs/pricing.md, "Adding a price model"). A registry is a
value: `PRICERS.with_pricer(...)` makes another one (the tests price a test-only model that way) and leaves
`PRICERS` as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tollway.billing.pricing import dynamic, package, tiered, unit
from tollway.billing.pricing.model import UsagePrice
from tollway.billing.pricing.pricer import Pricer


class Pricers:
    """Price type -> pricer, in the order they are listed (error messages name the types in that order)."""

    def __init__(self, pricers: Iterable[Pricer[Any]]) -> None:
        self._by_type: dict[str, Pricer[Any]] = {}
        self._by_class: dict[type, Pricer[Any]] = {}
        for pricer in pricers:
            if pricer.type in self._by_type or pricer.price_class in self._by_class:
                raise ValueError(f"price type {pricer.type!r} registered twice")
            self._by_type[pricer.type] = pricer
            self._by_class[pricer.price_class] = pricer

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self._by_type)

    @property
    def wire_fields(self) -> frozenset[str]:
        """Every field some price model reads from the API's price object."""
        return frozenset(name for pricer in self._by_type.values() for name in pricer.wire_fields)

    def named(self, price_type: str) -> Pricer[Any] | None:
        return self._by_type.get(price_type)

    def of(self, price: UsagePrice) -> Pricer[Any]:
        """The pricer of a price's model; TypeError for a price no pricer here knows."""
        pricer = self._by_class.get(type(price))
        if pricer is None:
            raise TypeError(f"not a usage price: {price!r}")
        return pricer

    def knows(self, price: object) -> bool:
        return type(price) in self._by_class

    def with_pricer(self, pricer: Pricer[Any]) -> Pricers:
        """Another registry: these pricers and `pricer` (a new price type)."""
        return Pricers((*self._by_type.values(), pricer))


BUILT_IN: tuple[Pricer[Any], ...] = (unit.PRICER, tiered.PRICER, package.PRICER, dynamic.PRICER)
PRICERS = Pricers(BUILT_IN)
