"""The billing catalog in the config file: `features`, `plans` and `customers` (with their subscription).

Each section is checked on its own (features and customers here, plans in catalog_plans.py, what they share in
catalog_fields.py: types, amounts, tiers, currencies, durations) with one problem per line and the path of the
offending key; references to the stored catalog (a feature or plan defined through
the API) are checked when the file is applied (tollway.billing.apply).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from tollway.billing.apply import CUSTOMER_FIELDS, DesiredCatalog, DesiredCustomer, DesiredFeature, DesiredSubscription
from tollway.billing.countries import COUNTRY_CODES
from tollway.billing.customers import Address
from tollway.config.catalog_fields import Key, Strict
from tollway.config.catalog_plans import PlanConfig
from tollway.config.credits import CreditGrantConfig
from tollway.config.unit_grants import UnitGrantConfig
from tollway.errors import ValidationError
from tollway.money import currency_exponent

# -- features ---------------------------------------------------------------------------------------


class FeatureConfig(Strict):
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


# -- customers --------------------------------------------------------------------------------------


class AddressConfig(Strict):
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    postal_code: str | None = None
    state: str | None = None
    city: str | None = None
    line1: str | None = None
    line2: str | None = None
    phone_number: str | None = None

    @field_validator("country")
    @classmethod
    def _iso_3166(cls, country: str | None) -> str | None:
        if country is not None and country not in COUNTRY_CODES:
            raise ValueError(f"must be an ISO 3166-1 alpha-2 code like 'US', got {country!r}")
        return country


class SubscriptionConfig(Strict):
    plan: Key
    version: int | None = Field(default=None, ge=1)
    start: datetime | None = None

    @field_validator("start")
    @classmethod
    def _aware(cls, start: datetime | None) -> datetime | None:
        if start is not None and start.tzinfo is None:
            raise ValueError('give a UTC offset, e.g. "2026-12-01T00:00:00Z"')
        return start.astimezone(UTC) if start is not None else None


class CustomerConfig(Strict):
    key: Key
    name: str = Field(min_length=1)
    usage_from: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    currency: str | None = None
    billing_address: AddressConfig | None = None
    description: str = ""
    stripe_customer_id: str | None = Field(default=None, min_length=1)
    subscription: SubscriptionConfig | None = None
    credits: list[CreditGrantConfig] = Field(default_factory=list)  # money credit grants, created once each
    grants: list[UnitGrantConfig] = Field(default_factory=list)  # unit grants on metered entitlements

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
            unset=frozenset(CUSTOMER_FIELDS) - {_DESIRED_NAMES.get(name, name) for name in self.model_fields_set},
        )


_DESIRED_NAMES = {"usage_from": "subjects"}  # the file's field names that differ from the customer's


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
