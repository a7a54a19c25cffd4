"""The billing catalog in the config file: `features`, `plans` and `customers` (with their subscription).

Each section is checked on its own here (types, amounts, tiers, currencies, durations) with one problem per
line and the path of the offending key; references to the stored catalog (a feature or plan defined through
the API) are checked when the file is applied (tollway.billing.apply).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core import ValidationError as PydanticValidationError

from tollway.billing.apply import DesiredCatalog, DesiredCustomer, DesiredFeature, DesiredPlan, DesiredSubscription
from tollway.billing.customers import Address
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.periods import parse_cadence
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing import validate_tiers, validate_usage_terms
from tollway.billing.pricing.model import (
    DynamicPrice,
    FlatPrice,
    PackagePrice,
    Tier,
    TieredPrice,
    UnitPrice,
    UsagePrice,
    UsageTerms,
)
from tollway.errors import ValidationError
from tollway.money import currency_exponent, parse_decimal

if TYPE_CHECKING:
    from tollway.config.schema import TollwayConfig

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
FLOAT_HINT = 'write it in quotes, e.g. "0.000003": YAML reads an unquoted decimal as a float, which loses digits'
Loc = tuple[str | int, ...]


def _decimal(value: object) -> Decimal:
    if isinstance(value, float):
        raise ValueError(FLOAT_HINT)
    try:
        return parse_decimal(value, field="value")
    except ValidationError as exc:
        raise ValueError(exc.message.removeprefix("value ")) from None


Amount = Annotated[Decimal, PlainValidator(_decimal)]
Key = Annotated[str, Field(pattern=KEY_PATTERN)]


def _cadence(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return parse_cadence(value, field="value").text
    except ValidationError as exc:
        raise ValueError(exc.message.removeprefix("value ")) from None


def _raise(model: str, problems: list[tuple[Loc, str]]) -> None:
    """Report problems at paths below the model being validated (pydantic prefixes the model's own path)."""
    if problems:
        raise PydanticValidationError.from_exception_data(
            model,
            [
                InitErrorDetails(type=PydanticCustomError("catalog", message), loc=loc, input=None)
                for loc, message in problems
            ],
        )


# The pricing validators name the API's fields; the file spells some of them differently.
_FILE_SPELLING = (
    (re.compile(r"\.upToAmount$"), ".upTo"),
    (re.compile(r"\.(unitPrice|flatPrice)\.amount$"), r".\1"),
    (re.compile(r"\.price\.(minimumAmount|maximumAmount)$"), r".\1"),  # on the rate card in the file
    (re.compile(r"\.discounts\.percentage\.percentage$"), ".discounts.percentage"),
    (re.compile(r"\.discounts\.usage\.quantity$"), ".discounts.usage"),
)


def _relative_loc(field: str | None, base: str) -> Loc:
    """A domain ValidationError's field (the API's spelling) -> the file's path below `base`:
    `price.tiers[1].upToAmount` -> ("tiers", 1, "up_to") below `price`;
    `rate_card.discounts.percentage.percentage` -> ("discounts", "percentage") below `rate_card`."""
    text = field or ""
    for pattern, spelling in _FILE_SPELLING:
        text = pattern.sub(spelling, text)
    text = text.removeprefix(base).lstrip(".")
    loc: list[str | int] = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", text):
        if part.startswith("["):
            loc.append(int(part[1:-1]))
        else:
            loc.append(re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", part).lower())
    return tuple(loc)


def _domain_message(exc: ValidationError) -> str:
    message = exc.message
    if exc.field and message.startswith(exc.field + " "):
        message = message[len(exc.field) + 1 :]
    return message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- features ---------------------------------------------------------------------------------------


class FeatureConfig(_Strict):
    key: Key
    name: str | None = Field(default=None, min_length=1)
    meter: str | None = Field(default=None, min_length=1)
    filters: dict[str, str | int | list[str | int]] = Field(default_factory=dict)

    @field_validator("filters")
    @classmethod
    def _filter_values(cls, filters: dict[str, Any]) -> dict[str, Any]:
        for name, value in filters.items():
            values = value if isinstance(value, list) else [value]
            if not values or any(isinstance(v, bool) or str(v) == "" for v in values):
                raise ValueError(f"{name}: give one value or a list of non-empty values")
        return filters

    @model_validator(mode="after")
    def _filters_need_a_meter(self) -> FeatureConfig:
        if self.filters and self.meter is None:
            raise ValueError("filters narrow a meter: give the meter too")
        return self

    def desired(self, path: str) -> DesiredFeature:
        filters = {
            name: tuple(str(v) for v in (value if isinstance(value, list) else [value]))
            for name, value in self.filters.items()
        }
        return DesiredFeature(
            key=self.key, name=self.name or self.key, meter_slug=self.meter, filters=filters, path=path
        )


# -- plans ------------------------------------------------------------------------------------------


class TierConfig(_Strict):
    up_to: Amount | None = None
    unit_price: Amount = Decimal(0)
    flat_price: Amount = Decimal(0)


PriceType = Literal["unit", "tiered", "package", "dynamic", "flat"]
_PRICE_FIELDS: dict[str, tuple[set[str], set[str]]] = {  # type -> (required, optional)
    "unit": ({"amount"}, set()),
    "tiered": ({"mode", "tiers"}, set()),
    "package": ({"amount", "quantity_per_package"}, set()),
    "dynamic": ({"multiplier"}, set()),
    "flat": ({"amount"}, {"payment_term"}),
}


class PriceConfig(_Strict):
    type: PriceType
    amount: Amount | None = None
    mode: Literal["graduated", "volume"] | None = None
    tiers: list[TierConfig] | None = Field(default=None, min_length=1)
    quantity_per_package: Amount | None = None
    multiplier: Amount | None = None
    payment_term: Literal["in_advance", "in_arrears"] | None = None

    @model_validator(mode="after")
    def _fields_of_type(self) -> PriceConfig:
        required, optional = _PRICE_FIELDS[self.type]
        given = {name for name in self.model_fields_set if getattr(self, name) is not None} - {"type"}
        problems: list[tuple[Loc, str]] = [
            ((name,), f"required for a {self.type} price") for name in sorted(required - given)
        ]
        problems += [
            ((name,), f"does not apply to a {self.type} price") for name in sorted(given - required - optional)
        ]
        if not problems and self.type == "tiered":
            try:
                validate_tiers(self.tiers_model(), field="price")
            except ValidationError as exc:
                problems.append((_relative_loc(exc.field, "price"), _domain_message(exc)))
        _raise("PriceConfig", problems)
        return self

    def tiers_model(self) -> tuple[Tier, ...]:
        return tuple(Tier(up_to=t.up_to, unit_price=t.unit_price, flat_price=t.flat_price) for t in self.tiers or [])

    def usage_price(self) -> UsagePrice | None:
        if self.type == "unit":
            assert self.amount is not None
            return UnitPrice(amount=self.amount)
        if self.type == "tiered":
            assert self.mode is not None
            return TieredPrice(mode=self.mode, tiers=self.tiers_model())
        if self.type == "package":
            assert self.amount is not None
            assert self.quantity_per_package is not None
            return PackagePrice(amount=self.amount, quantity_per_package=self.quantity_per_package)
        if self.type == "dynamic":
            assert self.multiplier is not None
            return DynamicPrice(multiplier=self.multiplier)
        return None

    def flat_price(self) -> FlatPrice | None:
        if self.type != "flat":
            return None
        assert self.amount is not None
        return FlatPrice(amount=self.amount, payment_term=self.payment_term or "in_advance")


class DiscountsConfig(_Strict):
    percentage: Amount = Decimal(0)
    usage: Amount = Decimal(0)  # free quantity, taken off first


class EntitlementConfig(_Strict):
    type: Literal["boolean", "static", "metered"]
    limit: Amount | None = None
    hard: bool | None = None
    usage_period: str | None = None
    config: Any = None

    @field_validator("usage_period")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return _cadence(value)

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
        _raise("EntitlementConfig", problems)
        return self

    def template(self) -> EntitlementTemplate:
        return EntitlementTemplate(
            type=self.type,
            limit=self.limit,
            hard=bool(self.hard),
            usage_period=self.usage_period,
            config=self.config,
        )


class RateCardConfig(_Strict):
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
        return _cadence(value)

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
                problems.append((_relative_loc(exc.field, "rate_card") or ("price",), _domain_message(exc)))
        _raise("RateCardConfig", problems)
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


class PhaseConfig(_Strict):
    key: Key
    name: str | None = Field(default=None, min_length=1)
    duration: str | None = None
    rate_cards: list[RateCardConfig] = Field(default_factory=list)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        return _cadence(value)

    @model_validator(mode="after")
    def _unique(self) -> PhaseConfig:
        problems: list[tuple[Loc, str]] = []
        _unique_cards(self.rate_cards, ("rate_cards",), problems)
        _raise("PhaseConfig", problems)
        return self


class PlanConfig(_Strict):
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
        return _cadence(value)

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
        _raise("PlanConfig", problems)
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


# -- customers --------------------------------------------------------------------------------------


class AddressConfig(_Strict):
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    postal_code: str | None = None
    state: str | None = None
    city: str | None = None
    line1: str | None = None
    line2: str | None = None
    phone_number: str | None = None


class SubscriptionConfig(_Strict):
    plan: Key
    version: int | None = Field(default=None, ge=1)
    start: datetime | None = None

    @field_validator("start")
    @classmethod
    def _aware(cls, start: datetime | None) -> datetime | None:
        if start is not None and start.tzinfo is None:
            raise ValueError('give a UTC offset, e.g. "2026-12-01T00:00:00Z"')
        return start.astimezone(UTC) if start is not None else None


class CustomerConfig(_Strict):
    key: Key
    name: str = Field(min_length=1)
    usage_from: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    currency: str | None = None
    billing_address: AddressConfig | None = None
    description: str = ""
    stripe_customer_id: str | None = Field(default=None, min_length=1)
    subscription: SubscriptionConfig | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, code: str | None) -> str | None:
        if code is not None:
            try:
                currency_exponent(code)
            except ValidationError as exc:
                raise ValueError(exc.message) from None
        return code

    def desired(self, path: str) -> DesiredCustomer:
        address = None
        if self.billing_address is not None:
            address = Address(**self.billing_address.model_dump())
        subscription = None
        if self.subscription is not None:
            subscription = DesiredSubscription(
                plan_key=self.subscription.plan, plan_version=self.subscription.version, start=self.subscription.start
            )
        return DesiredCustomer(
            key=self.key,
            name=self.name,
            subjects=tuple(self.usage_from),
            email=self.email,
            currency=self.currency,
            billing_address=address,
            description=self.description,
            stripe_customer_id=self.stripe_customer_id,
            subscription=subscription,
            path=path,
        )


# -- the three sections together --------------------------------------------------------------------


def catalog_problems(
    features: list[FeatureConfig], plans: list[PlanConfig], customers: list[CustomerConfig]
) -> list[str]:
    """Checks across entries of the file: keys unique per section, a subject paid for by one customer."""
    problems: list[str] = []
    for section, keys in (
        ("features", [f.key for f in features]),
        ("plans", [p.key for p in plans]),
        ("customers", [c.key for c in customers]),
    ):
        seen: set[str] = set()
        for i, key in enumerate(keys):
            if key in seen:
                problems.append(f"{section}[{i}].key: duplicate {key!r}")
            seen.add(key)
    owners: dict[str, str] = {}
    for i, customer in enumerate(customers):
        for subject in customer.usage_from:
            owner = owners.get(subject)
            if owner is not None and owner != customer.key:
                problems.append(
                    f"customers[{i}].usage_from: subject {subject!r} is already paid for by customer {owner!r}"
                )
            owners.setdefault(subject, customer.key)
    return problems


def desired_catalog(
    features: list[FeatureConfig], plans: list[PlanConfig], customers: list[CustomerConfig]
) -> DesiredCatalog:
    return DesiredCatalog(
        features=tuple(f.desired(f"features[{i}]") for i, f in enumerate(features)),
        plans=tuple(p.desired(f"plans[{i}]") for i, p in enumerate(plans)),
        customers=tuple(c.desired(f"customers[{i}]") for i, c in enumerate(customers)),
    )


def config_catalog(config: TollwayConfig) -> DesiredCatalog:
    """Everything `tollway apply` and `serve` make the store hold: the built-in and config meters, then the
    file's features, plans and customers."""
    from tollway.metering.meters import BUILT_IN_METERS, Meter

    meters = (*BUILT_IN_METERS, *(Meter.from_record(m.record()) for m in config.meters))
    return replace(desired_catalog(config.features, config.plans, config.customers), meters=meters)
