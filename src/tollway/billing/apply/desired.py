"""What `tollway apply` compares: the desired catalog (built from the config file) and a snapshot of the stored one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

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
    unset: frozenset[str] = frozenset()  # the fields above the file leaves out (of CUSTOMER_FIELDS): never changed


CUSTOMER_FIELDS = ("subjects", "email", "currency", "billing_address", "description", "stripe_customer_id")
"""The customer fields a file may set or leave out (a DesiredCustomer's and a Customer's names alike)."""


def keep_unset(desired: DesiredCustomer, stored: Customer | None) -> DesiredCustomer:
    """The customer as apply will write it: what the file sets, and the stored value of every field it leaves
    out (the Stripe link the sync recorded, an e-mail set through the API), so that apply never changes one."""
    if stored is None or not desired.unset:
        return desired
    kept: dict[str, Any] = {name: getattr(stored, name) for name in desired.unset}
    return replace(desired, **kept)


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
