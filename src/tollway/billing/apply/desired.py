"""What `tollway apply` compares: the desired catalog (built from the config file) and a snapshot of the stored one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from tollway.billing.customers import Address, Customer
from tollway.billing.features import Feature
from tollway.billing.plans import Phase, Plan
from tollway.billing.subscriptions import Subscription
from tollway.metering.meters import Meter


@dataclass(frozen=True)
class DesiredFeature:
    key: str
    name: str
    meter_slug: str | None
    filters: Mapping[str, tuple[str, ...]]
    path: str = ""  # where the file defines it, for problem lines: "features[1]"


@dataclass(frozen=True)
class DesiredPlan:
    key: str
    name: str
    currency: str
    billing_cadence: str
    phases: tuple[Phase, ...]
    description: str = ""
    path: str = ""
    card_paths: tuple[tuple[str, ...], ...] = ()  # per phase, per rate card: "plans[1].rate_cards[0]"


@dataclass(frozen=True)
class DesiredSubscription:
    plan_key: str
    plan_version: int | None = None
    start: datetime | None = None  # None: now, when first applied


@dataclass(frozen=True)
class DesiredCustomer:
    key: str
    name: str
    subjects: tuple[str, ...] = ()
    email: str | None = None
    currency: str | None = None
    billing_address: Address | None = None
    description: str = ""
    stripe_customer_id: str | None = None
    subscription: DesiredSubscription | None = None
    path: str = ""


@dataclass(frozen=True)
class DesiredCatalog:
    features: tuple[DesiredFeature, ...] = ()
    plans: tuple[DesiredPlan, ...] = ()
    customers: tuple[DesiredCustomer, ...] = ()
    meters: tuple[Meter, ...] | None = None  # every built-in and config meter; None: leave meters alone


@dataclass(frozen=True)
class StoredCatalog:
    features: tuple[Feature, ...] = ()  # not archived
    plans: tuple[Plan, ...] = ()  # every version
    customers: tuple[Customer, ...] = ()  # not deleted
    subscriptions: tuple[Subscription, ...] = ()
    meters: tuple[Meter, ...] = ()
