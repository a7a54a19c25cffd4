"""Subscriptions: a customer on a published plan version from a start; plan changes, migrations, cancels.

Subscriptions run from `active_from` (inclusive) to `active_to` (exclusive). A plan change or migration ends
the current subscription at an instant T and starts the next one at T, both written in one transaction.

Built from the catalog store, the clock, and the customer and plan services (who subscribes, to what).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from tollway.billing import periods
from tollway.billing.catalog.customer_service import CustomerService
from tollway.billing.catalog.plan_service import PlanService
from tollway.billing.customers import Customer
from tollway.billing.plans import Plan
from tollway.billing.ports import CatalogStore
from tollway.billing.subscriptions import Subscription, active_at
from tollway.billing.validation import check_aware, check_metadata
from tollway.clock import Clock
from tollway.errors import ConflictError, NotFoundError, ValidationError
from tollway.ids import new_id

Timing = Literal["immediate", "next_billing_cycle"] | datetime


class SubscriptionService:
    def __init__(self, store: CatalogStore, clock: Clock, customers: CustomerService, plans: PlanService) -> None:
        self._store = store
        self._clock = clock
        self._customers = customers
        self._plans = plans

    @staticmethod
    def _overlaps(subscription: Subscription, start: datetime) -> bool:
        """Whether `subscription` is active at some instant at or after `start`."""
        if subscription.active_to is not None and subscription.active_to <= subscription.active_from:
            return False
        return subscription.active_to is None or subscription.active_to > start

    @staticmethod
    def _check_currency(owner: Customer, plan: Plan) -> None:
        if owner.currency is not None and owner.currency != plan.currency:
            raise ValidationError(
                f"plan {plan.key!r} bills in {plan.currency} but customer {owner.key!r} pays in {owner.currency}",
                field="plan.key",
            )

    async def _refuse_overlap(self, owner: Customer, start: datetime, *, replacing: str | None = None) -> None:
        """ConflictError when another subscription of the customer (not `replacing`) is active at or after
        `start`."""
        for other in await self._store.list_subscriptions(customer_id=owner.id):
            if other.id != replacing and self._overlaps(other, start):
                raise ConflictError(
                    f"customer {owner.key!r} already has subscription {other.id} from {other.active_from.isoformat()}"
                    + (f" to {other.active_to.isoformat()}" if other.active_to else ""),
                    field="customer",
                )

    async def create_subscription(
        self,
        *,
        customer: str,
        plan_key: str,
        plan_version: int | None = None,
        active_from: datetime | None = None,
        billing_anchor: datetime | None = None,
        name: str = "",
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> Subscription:
        """On the published version (or the given one, which must be published). Start defaults to now;
        a customer has at most one subscription active at any instant (ConflictError)."""
        now = self._clock.now()
        start = check_aware(active_from, "activeFrom") if active_from is not None else now
        anchor = check_aware(billing_anchor, "billingAnchor") if billing_anchor is not None else start
        meta = check_metadata(metadata)
        if not isinstance(description, str):
            raise ValidationError("description must be a string", field="description")
        owner = await self._customers.live_customer(customer)
        plan = await self._plans.published_plan(plan_key, plan_version)
        self._check_currency(owner, plan)
        await self._refuse_overlap(owner, start)
        subscription = Subscription(
            id=new_id(now),
            customer_id=owner.id,
            plan_id=plan.id,
            plan_key=plan.key,
            plan_version=plan.version,
            currency=plan.currency,
            billing_cadence=plan.billing_cadence,
            billing_anchor=anchor,
            active_from=start,
            name=name or plan.name,
            description=description,
            metadata=meta,
            created_at=now,
            updated_at=now,
        )
        await self._store.insert_subscription(subscription)
        return subscription

    async def _open_subscription(self, subscription_id: str) -> Subscription:
        subscription = await self.subscription(subscription_id)
        if subscription.replaced_by is not None:
            raise ConflictError(
                f"subscription {subscription.id} was replaced by {subscription.replaced_by}", field="subscription"
            )
        now = self._clock.now()
        if subscription.active_to is not None and subscription.active_to <= max(now, subscription.active_from):
            raise ConflictError(f"subscription {subscription.id} has already ended", field="subscription")
        return subscription

    def _end_at(self, subscription: Subscription, timing: Timing) -> datetime:
        """The instant `timing` means for `subscription` (never before now or before its start)."""
        now = self._clock.now()
        if isinstance(timing, datetime):
            at = check_aware(timing, "timing")
            if at < now or at < subscription.active_from:
                raise ValidationError("timing must not be before now or before the subscription starts", field="timing")
            return at
        if timing == "immediate":
            return max(now, subscription.active_from)
        if timing == "next_billing_cycle":
            cadence = periods.parse_cadence(subscription.billing_cadence)
            _, end = periods.period_containing(subscription.billing_anchor, cadence, max(now, subscription.active_from))
            return end
        raise ValidationError("timing must be immediate, next_billing_cycle or a date-time", field="timing")

    async def cancel_subscription(self, subscription_id: str, timing: Timing = "immediate") -> Subscription:
        """Ends the subscription at the timing; usage after the end is not billed on it."""
        subscription = await self._open_subscription(subscription_id)
        end = self._end_at(subscription, timing)
        now = self._clock.now()
        canceled = replace(subscription, active_to=end, canceled_at=now, updated_at=now)
        await self._store.update_subscriptions([canceled])
        return canceled

    async def change_subscription(
        self,
        subscription_id: str,
        *,
        plan_key: str,
        plan_version: int | None = None,
        timing: Timing = "immediate",
    ) -> tuple[Subscription, Subscription]:
        """End the current subscription at the timing and start one on the new plan at the same instant.
        Returns (current, next).

        The next subscription's billing anchor is the change instant (its cadence starts afresh), except for a
        change at the next billing cycle between plans of the same cadence, which keeps the current anchor."""
        current = await self._open_subscription(subscription_id)
        plan = await self._plans.published_plan(plan_key, plan_version)
        if plan.id == current.plan_id:
            raise ConflictError(
                f"subscription {current.id} is already on plan {plan.key!r} v{plan.version}", field="plan.key"
            )
        at = self._end_at(current, timing)
        if current.active_to is not None and at > current.active_to:
            raise ConflictError(
                f"subscription {current.id} ends at {current.active_to.isoformat()}, before the change", field="timing"
            )
        owner = await self._customers.live_customer(current.customer_id)
        self._check_currency(owner, plan)
        await self._refuse_overlap(owner, at, replacing=current.id)
        keep_anchor = timing == "next_billing_cycle" and plan.billing_cadence == current.billing_cadence
        now = self._clock.now()
        following = Subscription(
            id=new_id(now),
            customer_id=current.customer_id,
            plan_id=plan.id,
            plan_key=plan.key,
            plan_version=plan.version,
            currency=plan.currency,
            billing_cadence=plan.billing_cadence,
            billing_anchor=current.billing_anchor if keep_anchor else at,
            active_from=at,
            name=plan.name if current.name in ("", current.plan_key) else current.name,
            description=current.description,
            metadata=dict(current.metadata),
            created_at=now,
            updated_at=now,
        )
        ended = replace(current, active_to=at, replaced_by=following.id, updated_at=now)
        await self._store.update_subscriptions([ended], [following])
        return ended, following

    async def migrate_subscription(
        self, subscription_id: str, *, target_version: int | None = None, timing: Timing = "immediate"
    ) -> tuple[Subscription, Subscription]:
        """A plan change to another version of the same plan (default: the published one)."""
        current = await self.subscription(subscription_id)
        return await self.change_subscription(
            subscription_id, plan_key=current.plan_key, plan_version=target_version, timing=timing
        )

    async def subscriptions(self, *, customer: str | None = None) -> list[Subscription]:
        customer_id = (await self._customers.customer(customer)).id if customer is not None else None
        return await self._store.list_subscriptions(customer_id=customer_id)

    async def subscription(self, subscription_id: str) -> Subscription:
        found = await self._store.get_subscription(subscription_id)
        if found is None:
            raise NotFoundError(f"subscription {subscription_id!r} not found", field="subscription")
        return found

    async def subscription_at(self, customer: str, at: datetime) -> Subscription | None:
        """The customer's subscription active at `at`, if any."""
        owner = await self._customers.customer(customer)
        return active_at(await self._store.list_subscriptions(customer_id=owner.id), at)
