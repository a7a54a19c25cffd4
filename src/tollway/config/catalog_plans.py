"""The `plans` section: plans, phases, rate cards, prices, tiers, discounts and entitlements, each checked on its own
(the price rules are tollway.billing.pricing's; problems name the file's keys)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from tollway.billing.apply import DesiredPlan
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import FlatPrice, UsagePrice, UsageTerms
from tollway.billing.pricing.registry import PRICERS
from tollway.billing.pricing.terms import validate_usage_terms
from tollway.config.catalog_fields import (
    Amount,
    Key,
    Loc,
    Strict,
    cadence,
    domain_message,
    raise_problems,
    relative_loc,
)
from tollway.errors import ValidationError
from tollway.money import currency_exponent


class TierConfig(Strict):
    up_to: Amount | None = None
    unit_price: Amount = Decimal(0)
    flat_price: Amount = Decimal(0)


FLAT = "flat"
PRICE_TYPES = (*PRICERS.types, FLAT)  # the registry's usage price models, then the flat fee
_FLAT_FIELDS = (frozenset({"amount"}), frozenset({"payment_term"}))  # (required, optional)


def _fields_of(price_type: str) -> tuple[frozenset[str], frozenset[str]]:
    pricer = PRICERS.named(price_type)
    return _FLAT_FIELDS if pricer is None else pricer.config_fields


def _plain(value: Any) -> Any:
    if isinstance(value, Strict):
        return value.model_dump()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class PriceConfig(Strict):
    """A price: `type` names a usage price model (its pricer says which of these fields it takes) or `flat`."""

    type: str
    amount: Amount | None = None
    mode: Literal["graduated", "volume"] | None = None
    tiers: list[TierConfig] | None = Field(default=None, min_length=1)
    quantity_per_package: Amount | None = None
    multiplier: Amount | None = None
    payment_term: Literal["in_advance", "in_arrears"] | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: object) -> object:
        if value not in PRICE_TYPES:
            expected = ", ".join(f"'{t}'" for t in PRICE_TYPES[:-1]) + f" or '{PRICE_TYPES[-1]}'"
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value

    @model_validator(mode="after")
    def _fields_of_type(self) -> PriceConfig:
        required, optional = _fields_of(self.type)
        given = {name for name in self.model_fields_set if getattr(self, name) is not None} - {"type"}
        problems: list[tuple[Loc, str]] = [
            ((name,), f"required for a {self.type} price") for name in sorted(required - given)
        ]
        problems += [
            ((name,), f"does not apply to a {self.type} price") for name in sorted(given - required - optional)
        ]
        if not problems:
            try:
                self.usage_price()  # what the file's schema cannot check alone (a tiered price's tiers)
            except ValidationError as exc:
                problems.append((relative_loc(exc.field, "price"), domain_message(exc)))
        raise_problems("PriceConfig", problems)
        return self

    def _values(self) -> dict[str, Any]:
        """The given fields of this type as plain values (Decimals, strings, lists of dicts) for its pricer."""
        required, optional = _fields_of(self.type)
        return {name: _plain(getattr(self, name)) for name in required | optional if getattr(self, name) is not None}

    def usage_price(self) -> UsagePrice | None:
        pricer = PRICERS.named(self.type)
        if pricer is None:
            return None
        price: UsagePrice = pricer.from_config(self._values(), field="price")
        return price

    def flat_price(self) -> FlatPrice | None:
        if self.type != FLAT:
            return None
        assert self.amount is not None
        return FlatPrice(amount=self.amount, payment_term=self.payment_term or "in_advance")


class DiscountsConfig(Strict):
    percentage: Amount = Decimal(0)
    usage: Amount = Decimal(0)  # free quantity, taken off first


class EntitlementConfig(Strict):
    type: Literal["boolean", "static", "metered"]
    limit: Amount | None = None
    hard: bool | None = None
    usage_period: str | None = None
    config: Any = None

    @field_validator("usage_period")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return cadence(value)

    @model_validator(mode="after")
    def _fields_of_type(self) -> EntitlementConfig:
        problems: list[tuple[Loc, str]] = []
        if self.type == "metered":
            if self.limit is None:
                problems.append((("limit",), "required for a metered entitlement"))
            if "config" in self.model_fields_set:
                problems.append((("config",), "applies only to a static entitlement"))
        else:
            for name in ("limit", "hard", "usage_period"):
                if name in self.model_fields_set:
                    problems.append(((name,), "applies only to a metered entitlement"))
            if self.type == "static" and self.config is None:
                problems.append((("config",), "required for a static entitlement (any JSON value)"))
            if self.type == "boolean" and "config" in self.model_fields_set:
                problems.append((("config",), "applies only to a static entitlement"))
        raise_problems("EntitlementConfig", problems)
        return self

    def template(self) -> EntitlementTemplate:
        return EntitlementTemplate(
            type=self.type,
            limit=self.limit,
            hard=bool(self.hard),
            usage_period=self.usage_period,
            config=self.config,
        )


class RateCardConfig(Strict):
    key: Key | None = None
    name: str | None = Field(default=None, min_length=1)
    description: str = ""
    feature: Key | None = None
    price: PriceConfig | None = None
    billing_cadence: str | None = None
    one_time: bool = False
    minimum_amount: Amount | None = None
    maximum_amount: Amount | None = None
    discounts: DiscountsConfig | None = None
    entitlement: EntitlementConfig | None = None

    @field_validator("billing_cadence")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return cadence(value)

    @model_validator(mode="after")
    def _shape(self) -> RateCardConfig:
        problems: list[tuple[Loc, str]] = []
        flat = self.price is not None and self.price.type == "flat"
        if self.key is None and self.feature is None:
            problems.append((("key",), "a rate card without a feature needs a key"))
        if self.price is None and self.entitlement is None:
            problems.append((("price",), "a rate card needs a price, an entitlement or both"))
        if self.price is not None and not flat and self.feature is None:
            problems.append((("feature",), f"a {self.price.type} price needs the feature whose usage it prices"))
        if self.entitlement is not None and self.feature is None:
            problems.append((("feature",), "an entitlement needs the feature it grants"))
        if not flat:
            for name in ("one_time",):
                if name in self.model_fields_set:
                    problems.append(((name,), "applies only to a flat fee"))
        else:
            for name in ("minimum_amount", "maximum_amount", "discounts"):
                if getattr(self, name) is not None:
                    problems.append(((name,), "applies only to a usage price, not a flat fee"))
        if self.one_time and self.billing_cadence is not None:
            problems.append((("billing_cadence",), "a one-time fee has no billing cadence"))
        if self.price is None:
            for name in ("minimum_amount", "maximum_amount", "discounts"):
                if getattr(self, name) is not None:
                    problems.append(((name,), "applies only to a usage price"))
        terms = None if problems else self.usage_terms()
        if terms is not None:
            try:
                validate_usage_terms(terms, field="rate_card")
            except ValidationError as exc:
                problems.append((relative_loc(exc.field, "rate_card") or ("price",), domain_message(exc)))
        raise_problems("RateCardConfig", problems)
        return self

    @property
    def resolved_key(self) -> str:
        key = self.key or self.feature
        assert key is not None
        return key

    def usage_terms(self) -> UsageTerms | None:
        price = self.price.usage_price() if self.price is not None else None
        if price is None:
            return None
        discounts = self.discounts or DiscountsConfig()
        return UsageTerms(
            price=price,
            free_quantity=discounts.usage,
            discount_percentage=discounts.percentage,
            minimum_amount=self.minimum_amount,
            maximum_amount=self.maximum_amount,
        )

    def rate_card(self, plan_cadence: str) -> RateCard:
        flat = self.price.flat_price() if self.price is not None else None
        one_time = flat is not None and (
            self.one_time or ("billing_cadence" in self.model_fields_set and self.billing_cadence is None)
        )
        return RateCard(
            key=self.resolved_key,
            name=self.name or self.resolved_key,
            feature_key=self.feature,
            usage=self.usage_terms(),
            flat=flat,
            billing_cadence=None if one_time else (self.billing_cadence or plan_cadence),
            entitlement=self.entitlement.template() if self.entitlement is not None else None,
            description=self.description,
        )


def _unique_cards(cards: list[RateCardConfig], base: Loc, problems: list[tuple[Loc, str]]) -> None:
    seen: set[str] = set()
    for j, card in enumerate(cards):
        if card.key is None and card.feature is None:
            continue
        if card.resolved_key in seen:
            problems.append(
                (
                    (*base, j, "key"),
                    f"duplicate rate card key {card.resolved_key!r} (a rate card's key defaults to its feature)",
                )
            )
        seen.add(card.resolved_key)


class PhaseConfig(Strict):
    key: Key
    name: str | None = Field(default=None, min_length=1)
    duration: str | None = None
    rate_cards: list[RateCardConfig] = Field(default_factory=list)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return cadence(value)

    @model_validator(mode="after")
    def _unique(self) -> PhaseConfig:
        problems: list[tuple[Loc, str]] = []
        _unique_cards(self.rate_cards, ("rate_cards",), problems)
        raise_problems("PhaseConfig", problems)
        return self


class PlanConfig(Strict):
    key: Key
    name: str = Field(min_length=1)
    description: str = ""
    currency: str
    billing_cadence: str
    rate_cards: list[RateCardConfig] | None = None
    phases: list[PhaseConfig] | None = Field(default=None, min_length=1)

    @field_validator("currency")
    @classmethod
    def _currency(cls, code: str) -> str:
        try:
            currency_exponent(code)
        except ValidationError as exc:
            raise ValueError(exc.message) from None
        return code

    @field_validator("billing_cadence")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return cadence(value)

    @model_validator(mode="after")
    def _phases(self) -> PlanConfig:
        problems: list[tuple[Loc, str]] = []
        if (self.rate_cards is None) == (self.phases is None):
            problems.append(
                (("rate_cards",), "give either rate_cards or phases (a list of {key, name, duration, rate_cards})")
            )
        if self.rate_cards is not None:
            _unique_cards(self.rate_cards, ("rate_cards",), problems)
        seen: set[str] = set()
        for p, phase in enumerate(self.phases or []):
            if phase.key in seen:
                problems.append((("phases", p, "key"), f"duplicate phase key {phase.key!r}"))
            seen.add(phase.key)
            if phase.duration is None and p < len(self.phases or []) - 1:
                problems.append((("phases", p, "duration"), "only the last phase may run without a duration"))
        raise_problems("PlanConfig", problems)
        return self

    def desired(self, path: str) -> DesiredPlan:
        if self.phases is not None:
            phases = tuple(
                Phase(
                    key=phase.key,
                    name=phase.name or phase.key,
                    duration=phase.duration,
                    rate_cards=tuple(card.rate_card(self.billing_cadence) for card in phase.rate_cards),
                )
                for phase in self.phases
            )
            paths = tuple(
                tuple(f"{path}.phases[{p}].rate_cards[{j}]" for j in range(len(phase.rate_cards)))
                for p, phase in enumerate(self.phases)
            )
        else:
            cards = self.rate_cards or []
            phases = (
                Phase(
                    key="default",
                    name="default",
                    rate_cards=tuple(card.rate_card(self.billing_cadence) for card in cards),
                ),
            )
            paths = (tuple(f"{path}.rate_cards[{j}]" for j in range(len(cards))),)
        return DesiredPlan(
            key=self.key,
            name=self.name,
            description=self.description,
            currency=self.currency,
            billing_cadence=self.billing_cadence,
            phases=phases,
            path=path,
            card_paths=paths,
        )
