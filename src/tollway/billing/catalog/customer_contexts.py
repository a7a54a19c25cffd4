"""Catalog reads kept between calls: what a preview or an entitlement value needs of the catalog, read
again only when the catalog changed.

Every catalog write, from any process, moves the store's version (one row, read with one primary-key
lookup). A kept read is used while the version is the one it was read at; the version is read before
the rows, so a write landing in between makes the next call read again rather than keep a stale copy.

Built from the catalog store and the customer and plan services (how a customer and a plan are found).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from tollway.billing.catalog.customer_service import CustomerService
from tollway.billing.catalog.plan_service import PlanService
from tollway.billing.customers import Customer
from tollway.billing.features import Feature
from tollway.billing.plans import Plan
from tollway.billing.ports import CatalogStore
from tollway.billing.subscriptions import Subscription
from tollway.errors import NotFoundError

MAX_KEPT_CUSTOMERS = 10_000


@dataclass(frozen=True)
class CustomerContext:
    """A customer (found by id, or by key among live customers), its subscriptions and their plans."""

    version: int
    customer: Customer
    subscriptions: tuple[Subscription, ...]
    plans: Mapping[str, Plan]
    features: tuple[Feature, ...]  # every feature, archived ones too (a plan may still name them)

    def feature(self, id_or_key: str) -> Feature:
        """By id (archived too), else by key among live features, as the store finds them."""
        for feature in self.features:
            if feature.id == id_or_key:
                return feature
        for feature in self.features:
            if feature.key == id_or_key and feature.archived_at is None:
                return feature
        raise NotFoundError(f"feature {id_or_key!r} not found", field="feature")

    def features_by_key(self) -> dict[str, Feature]:
        return {feature.key: feature for feature in self.features}


class CustomerContexts:
    """Each customer's catalog context, kept per catalog version (at most MAX_KEPT_CUSTOMERS, least recently used
    dropped first)."""

    def __init__(self, store: CatalogStore, customers: CustomerService, plans: PlanService) -> None:
        self._store = store
        self._customers = customers
        self._plans = plans
        self._kept: OrderedDict[str, CustomerContext] = OrderedDict()
        self._kept_features: tuple[int, tuple[Feature, ...]] | None = None

    async def customer_context(self, customer: str, *, live: bool = True) -> CustomerContext:
        """The customer's catalog context (NotFoundError when there is no such customer; with `live`, also
        when it is deleted), read from the store only if the catalog changed since it was last read."""
        version = await self._store.version()
        kept = self._kept.get(customer)
        if kept is None or kept.version != version:
            kept = await self._read_context(customer, version)
            self._kept[customer] = kept
            while len(self._kept) > MAX_KEPT_CUSTOMERS:
                self._kept.popitem(last=False)
        self._kept.move_to_end(customer)
        if live and kept.customer.deleted_at is not None:
            raise NotFoundError(f"customer {customer!r} not found", field="customer")
        return kept

    async def _read_context(self, customer: str, version: int) -> CustomerContext:
        found, features = await asyncio.gather(self._customers.customer(customer), self._features_at(version))
        subscriptions = tuple(await self._store.list_subscriptions(customer_id=found.id))
        plans = {
            plan_id: await self._plans.plan_by_id(plan_id) for plan_id in sorted({s.plan_id for s in subscriptions})
        }
        return CustomerContext(version, found, subscriptions, plans, features)

    async def _features_at(self, version: int) -> tuple[Feature, ...]:
        kept = self._kept_features
        if kept is not None and kept[0] == version:
            return kept[1]
        features = tuple(await self._store.list_features(include_archived=True))
        self._kept_features = (version, features)
        return features
