"""MemoryCatalogStore: the CatalogStore port in memory, with the uniqueness rules the SQL adapter enforces.

A write either applies whole or raises (ConflictError naming the field) before changing anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tollway.billing.customers import Customer
from tollway.billing.features import Feature
from tollway.billing.plans import Plan
from tollway.billing.subscription_changes import SubscriptionChange, changes_of
from tollway.billing.subscriptions import Subscription
from tollway.billing.validation import first_overlap, overlap_conflict
from tollway.clock import Clock, SystemClock
from tollway.errors import ConflictError, NotFoundError, UnavailableError
from tollway.ids import new_id


class MemoryCatalogStore:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._changes: list[SubscriptionChange] = []  # the subscription change journal
        self._done: set[str] = set()
        self._features: dict[str, Feature] = {}
        self._plans: dict[str, Plan] = {}
        self._customers: dict[str, Customer] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._version = 0  # bumped by every write
        self.available = True

    def _check(self) -> None:
        if not self.available:
            raise UnavailableError("memory catalog store set unavailable")

    # -- features ---------------------------------------------------------------------------------

    def _check_feature(self, feature: Feature) -> None:
        if feature.archived_at is not None:
            return
        for other in self._features.values():
            if other.id != feature.id and other.archived_at is None and other.key == feature.key:
                raise ConflictError(f"feature {feature.key!r} already exists", field="key")

    async def insert_feature(self, feature: Feature) -> None:
        self._check()
        if feature.id in self._features:
            raise ConflictError(f"feature id {feature.id!r} already exists", field="id")
        self._check_feature(feature)
        self._features[feature.id] = feature
        self._version += 1

    async def update_feature(self, feature: Feature) -> None:
        self._check()
        if feature.id not in self._features:
            raise NotFoundError(f"feature {feature.id!r} not found", field="id")
        self._check_feature(feature)
        self._features[feature.id] = feature
        self._version += 1

    async def get_feature(self, id_or_key: str) -> Feature | None:
        self._check()
        found = self._features.get(id_or_key)
        if found is not None:
            return found
        return next((f for f in self._features.values() if f.key == id_or_key and f.archived_at is None), None)

    async def list_features(self, *, include_archived: bool = False) -> list[Feature]:
        self._check()
        found = [f for f in self._features.values() if include_archived or f.archived_at is None]
        return sorted(found, key=lambda f: (f.key, f.id))

    # -- plans ------------------------------------------------------------------------------------

    def _check_plans(self, plans: Sequence[Plan], *, inserting: bool) -> None:
        after = dict(self._plans)
        for plan in plans:
            if inserting and plan.id in after:
                raise ConflictError(f"plan id {plan.id!r} already exists", field="id")
            if not inserting and plan.id not in after:
                raise NotFoundError(f"plan {plan.id!r} not found", field="id")
            after[plan.id] = plan
        seen: dict[tuple[str, int], str] = {}
        single: dict[tuple[str, str], str] = {}
        for plan in after.values():
            if seen.setdefault((plan.key, plan.version), plan.id) != plan.id:
                raise ConflictError(f"plan {plan.key!r} version {plan.version} already exists", field="key")
            if plan.status in ("draft", "published") and single.setdefault((plan.key, plan.status), plan.id) != plan.id:
                raise ConflictError(f"plan {plan.key!r} already has a {plan.status} version", field="key")

    async def insert_plan(self, plan: Plan) -> None:
        self._check()
        self._check_plans([plan], inserting=True)
        self._plans[plan.id] = plan
        self._version += 1

    async def update_plan(self, plan: Plan) -> None:
        await self.update_plans([plan])

    async def update_plans(self, plans: Sequence[Plan]) -> None:
        self._check()
        self._check_plans(plans, inserting=False)
        for plan in plans:
            self._plans[plan.id] = plan
        self._version += 1

    async def delete_plan(self, plan_id: str) -> bool:
        self._check()
        self._version += 1
        return self._plans.pop(plan_id, None) is not None

    async def get_plan(self, plan_id: str) -> Plan | None:
        self._check()
        return self._plans.get(plan_id)

    async def list_plans(self, *, key: str | None = None) -> list[Plan]:
        self._check()
        found = [p for p in self._plans.values() if key is None or p.key == key]
        return sorted(found, key=lambda p: (p.key, p.version))

    # -- customers --------------------------------------------------------------------------------

    def _check_customer(self, customer: Customer) -> None:
        if customer.deleted_at is not None:
            return
        for other in self._customers.values():
            if other.id == customer.id or other.deleted_at is not None:
                continue
            if other.key == customer.key:
                raise ConflictError(f"customer {customer.key!r} already exists", field="key")
            for subject in customer.subjects:
                if subject in other.subjects:
                    raise ConflictError(
                        f"subject {subject!r} already belongs to customer {other.key!r}",
                        field="usageAttribution.subjectKeys",
                    )

    async def insert_customer(self, customer: Customer) -> None:
        self._check()
        if customer.id in self._customers:
            raise ConflictError(f"customer id {customer.id!r} already exists", field="id")
        self._check_customer(customer)
        self._customers[customer.id] = customer
        self._version += 1

    async def update_customer(self, customer: Customer) -> None:
        self._check()
        if customer.id not in self._customers:
            raise NotFoundError(f"customer {customer.id!r} not found", field="id")
        self._check_customer(customer)
        self._customers[customer.id] = customer
        self._version += 1

    async def get_customer(self, id_or_key: str) -> Customer | None:
        self._check()
        found = self._customers.get(id_or_key)
        if found is not None:
            return found
        return next((c for c in self._customers.values() if c.key == id_or_key and c.deleted_at is None), None)

    async def list_customers(self, *, include_deleted: bool = False) -> list[Customer]:
        self._check()
        found = [c for c in self._customers.values() if include_deleted or c.deleted_at is None]
        return sorted(found, key=lambda c: (c.key, c.id))

    async def customer_of_subject(self, subject: str) -> Customer | None:
        self._check()
        return next(
            (c for c in self._customers.values() if c.deleted_at is None and subject in c.subjects),
            None,
        )

    # -- subscriptions ----------------------------------------------------------------------------

    async def insert_subscription(self, subscription: Subscription) -> None:
        await self.update_subscriptions((), (subscription,))

    async def update_subscriptions(self, changed: Sequence[Subscription], added: Sequence[Subscription] = ()) -> None:
        self._check()
        for subscription in changed:
            if subscription.id not in self._subscriptions:
                raise NotFoundError(f"subscription {subscription.id!r} not found", field="id")
        ids = [s.id for s in added]
        if len(set(ids)) != len(ids) or any(i in self._subscriptions for i in ids):
            raise ConflictError("subscription id already exists", field="id")
        after = dict(self._subscriptions)
        for subscription in (*changed, *added):
            after[subscription.id] = subscription
        for customer_id in {s.customer_id for s in (*changed, *added)}:
            pair = first_overlap([s for s in after.values() if s.customer_id == customer_id])
            if pair is not None:
                raise overlap_conflict(pair)
        before = {s.id: self._subscriptions[s.id] for s in changed}
        self._subscriptions = after
        self._version += 1
        now = self._clock.now()
        for kind, subscription_id, related in changes_of(before, changed, added):
            self._changes.append(SubscriptionChange(new_id(now), kind, subscription_id, related, now))

    async def pending_subscription_changes(self, *, limit: int = 100) -> list[SubscriptionChange]:
        self._check()
        return [c for c in self._changes if c.id not in self._done][:limit]

    async def complete_subscription_changes(self, ids: Sequence[str], *, at: datetime) -> None:
        self._check()
        self._done.update(ids)

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        self._check()
        return self._subscriptions.get(subscription_id)

    async def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        self._check()
        found = [s for s in self._subscriptions.values() if customer_id is None or s.customer_id == customer_id]
        return sorted(found, key=lambda s: (s.active_from, s.id))

    async def version(self) -> int:
        self._check()
        return self._version

    async def close(self) -> None:
        return None
