"""Catalog use cases: features, plans, customers, subscriptions and entitlement values.

Every method validates its input and raises a DomainError with a kind and the offending field
(ValidationError, NotFoundError, ConflictError); nothing is stored when it raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from tollway.billing.customers import Address, Customer
from tollway.billing.entitlements import EntitlementValue
from tollway.billing.features import Feature
from tollway.billing.plans import Phase, Plan
from tollway.billing.ports import CatalogStore
from tollway.billing.subscriptions import Subscription
from tollway.clock import Clock
from tollway.metering.service import MeteringService

Timing = Literal["immediate", "next_billing_cycle"] | datetime


class CatalogService:
    def __init__(self, store: CatalogStore, metering: MeteringService, clock: Clock) -> None:
        self._store = store
        self._metering = metering
        self._clock = clock

    @property
    def store(self) -> CatalogStore:
        return self._store

    # -- features -----------------------------------------------------------------------------

    async def create_feature(
        self,
        *,
        key: str,
        name: str | None = None,
        meter_slug: str | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        managed_by: str = "api",
    ) -> Feature:
        """The meter must exist and each filter name must be one of its group-by dimensions."""
        raise NotImplementedError

    async def features(self, *, include_archived: bool = False) -> list[Feature]:
        raise NotImplementedError

    async def feature(self, id_or_key: str) -> Feature:
        raise NotImplementedError

    async def archive_feature(self, id_or_key: str) -> Feature:
        """Refused (ConflictError) while a published plan version uses the feature."""
        raise NotImplementedError

    # -- plans --------------------------------------------------------------------------------

    async def create_plan(
        self,
        *,
        key: str,
        name: str,
        currency: str,
        billing_cadence: str,
        phases: Sequence[Phase],
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
        managed_by: str = "api",
    ) -> Plan:
        """A new draft: version 1 for a new key, else the next version (refused if the key has a draft)."""
        raise NotImplementedError

    async def update_plan(
        self,
        plan_id: str,
        *,
        name: str,
        billing_cadence: str,
        phases: Sequence[Phase],
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> Plan:
        """Only a draft can change (ConflictError otherwise)."""
        raise NotImplementedError

    async def delete_plan(self, plan_id: str) -> None:
        """Only a draft can be deleted."""
        raise NotImplementedError

    async def publish_plan(self, plan_id: str) -> Plan:
        """Draft -> published; the previously published version of the key is archived (its subscriptions
        stay on it until migrated)."""
        raise NotImplementedError

    async def archive_plan(self, plan_id: str) -> Plan:
        raise NotImplementedError

    async def plans(self, *, key: str | None = None, status: str | None = None) -> list[Plan]:
        raise NotImplementedError

    async def plan(self, id_or_key: str, version: int | None = None) -> Plan:
        """By id; or by key: the given version, else the published one, else the latest."""
        raise NotImplementedError

    # -- customers ----------------------------------------------------------------------------

    async def create_customer(
        self,
        *,
        key: str,
        name: str,
        subjects: Sequence[str] = (),
        email: str | None = None,
        currency: str | None = None,
        billing_address: Address | None = None,
        description: str = "",
        stripe_customer_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        managed_by: str = "api",
    ) -> Customer:
        """ConflictError (field usageAttribution.subjectKeys) if a subject already belongs to a customer."""
        raise NotImplementedError

    async def update_customer(self, customer: Customer) -> Customer:
        """Replace the mutable fields of a stored customer (same id)."""
        raise NotImplementedError

    async def delete_customer(self, id_or_key: str) -> None:
        """Refused (ConflictError) while the customer has an active or scheduled subscription."""
        raise NotImplementedError

    async def customers(self, *, include_deleted: bool = False) -> list[Customer]:
        raise NotImplementedError

    async def customer(self, id_or_key: str) -> Customer:
        raise NotImplementedError

    async def subjects_of(self, customer: str) -> list[str]:
        """For the meter query's `customer` filter (metering's CustomerResolver)."""
        raise NotImplementedError

    # -- subscriptions ------------------------------------------------------------------------

    async def create_subscription(
        self,
        *,
        customer: str,
        plan_key: str,
        plan_version: int | None = None,
        active_from: datetime | None = None,
        billing_anchor: datetime | None = None,
        name: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> Subscription:
        """On the published version (or the given one, which must be published). Start defaults to now;
        a customer has at most one subscription active at any instant (ConflictError)."""
        raise NotImplementedError

    async def cancel_subscription(self, subscription_id: str, timing: Timing = "immediate") -> Subscription:
        raise NotImplementedError

    async def change_subscription(
        self,
        subscription_id: str,
        *,
        plan_key: str,
        plan_version: int | None = None,
        timing: Timing = "immediate",
    ) -> tuple[Subscription, Subscription]:
        """End the current subscription at the timing and start one on the new plan at the same instant.
        Returns (current, next)."""
        raise NotImplementedError

    async def migrate_subscription(
        self, subscription_id: str, *, target_version: int | None = None, timing: Timing = "immediate"
    ) -> tuple[Subscription, Subscription]:
        """A plan change to another version of the same plan (default: the published one)."""
        raise NotImplementedError

    async def subscriptions(self, *, customer: str | None = None) -> list[Subscription]:
        raise NotImplementedError

    async def subscription(self, subscription_id: str) -> Subscription:
        raise NotImplementedError

    async def subscription_at(self, customer: str, at: datetime) -> Subscription | None:
        """The customer's subscription active at `at`, if any."""
        raise NotImplementedError

    # -- entitlements -------------------------------------------------------------------------

    async def entitlement_value(self, customer: str, feature: str, at: datetime | None = None) -> EntitlementValue:
        """From the customer's active subscription: the rate card for the feature that carries an entitlement.
        Metered: usage in the current usage period from meter rollups (no scan of events)."""
        raise NotImplementedError
