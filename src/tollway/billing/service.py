"""Catalog use cases: features, plans, customers, subscriptions and entitlement values.

Every method validates its input and raises a DomainError with a kind and the offending field
(ValidationError, NotFoundError, ConflictError); nothing is stored when it raises.

Subscriptions run from `active_from` (inclusive) to `active_to` (exclusive): only usage at or after
`active_from` is billed or counted against an entitlement. A plan change or migration ends the current
subscription at an instant T and starts the next one at T, both written in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from tollway.billing import periods
from tollway.billing.customers import Address, Customer
from tollway.billing.entitlements import EntitlementValue
from tollway.billing.features import Feature
from tollway.billing.plans import Phase, Plan, RateCard
from tollway.billing.ports import CatalogStore
from tollway.billing.subscriptions import Subscription
from tollway.billing.validation import (
    check_address,
    check_currency,
    check_email,
    check_key,
    check_metadata,
    check_name,
    check_phases,
    check_subjects,
)
from tollway.clock import Clock
from tollway.errors import ConflictError, NotFoundError, ValidationError
from tollway.ids import new_id
from tollway.metering.aggregation import MeterQuery
from tollway.metering.service import MeteringService

Timing = Literal["immediate", "next_billing_cycle"] | datetime
PLAN_STATUSES = ("draft", "published", "archived")


class CustomerSubjects:
    """Metering's CustomerResolver over the catalog store: a customer id or key -> the subjects it pays for.

    Built before MeteringService (which the CatalogService needs), so the composition root can hand it over."""

    def __init__(self, store: CatalogStore) -> None:
        self._store = store

    async def customer(self, id_or_key: str) -> Customer:
        found = await self._store.get_customer(id_or_key)
        if found is None or found.deleted_at is not None:
            raise NotFoundError(f"customer {id_or_key!r} not found", field="customer")
        return found

    async def subjects_of(self, customer: str) -> list[str]:
        """An unknown or deleted customer is a bad query parameter (ValidationError, field customer)."""
        try:
            return list((await self.customer(customer)).subjects)
        except NotFoundError as exc:
            raise ValidationError(f"unknown customer {customer!r}", field="customer") from exc


class CatalogService:
    def __init__(self, store: CatalogStore, metering: MeteringService, clock: Clock) -> None:
        self._store = store
        self._metering = metering
        self._clock = clock

    @property
    def store(self) -> CatalogStore:
        return self._store

    @property
    def clock(self) -> Clock:
        """The service's clock (the API reads subscription statuses at its `now`)."""
        return self._clock

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
        check_key(key)
        name = check_name(name if name is not None else key)
        checked = await self._check_filters(meter_slug, filters)
        meta = check_metadata(metadata)
        existing = await self._store.get_feature(key)
        if existing is not None and existing.key == key and not existing.archived:
            raise ConflictError(f"feature {key!r} already exists", field="key")
        now = self._clock.now()
        feature = Feature(
            id=new_id(now),
            key=key,
            name=name,
            meter_slug=meter_slug,
            filters=checked,
            metadata=meta,
            managed_by=managed_by,
            created_at=now,
            updated_at=now,
        )
        await self._store.insert_feature(feature)
        return feature

    async def _check_filters(
        self, meter_slug: str | None, filters: Mapping[str, Sequence[str]] | None
    ) -> dict[str, tuple[str, ...]]:
        field = "meterGroupByFilters"
        if meter_slug is None:
            if filters:
                raise ValidationError("filters need a meter (meterSlug)", field=field)
            return {}
        if not isinstance(meter_slug, str):
            raise ValidationError("meterSlug must be a string", field="meterSlug")
        try:
            meter = await self._metering.meter(meter_slug)
        except NotFoundError:
            raise ValidationError(f"unknown meter {meter_slug!r}", field="meterSlug") from None
        checked: dict[str, tuple[str, ...]] = {}
        for dimension, values in (filters or {}).items():
            if dimension not in meter.group_by:
                known = ", ".join(meter.group_by) or "none"
                raise ValidationError(
                    f"meter {meter_slug!r} has no groupBy {dimension!r} (known: {known})", field=field
                )
            listed = (values,) if isinstance(values, str) else tuple(values)
            if not listed or not all(isinstance(v, str) and v for v in listed):
                raise ValidationError(f"filter {dimension!r} needs one or more non-empty strings", field=field)
            checked[dimension] = listed
        return checked

    async def features(self, *, include_archived: bool = False) -> list[Feature]:
        return await self._store.list_features(include_archived=include_archived)

    async def feature(self, id_or_key: str) -> Feature:
        found = await self._store.get_feature(id_or_key)
        if found is None:
            raise NotFoundError(f"feature {id_or_key!r} not found", field="feature")
        return found

    async def archive_feature(self, id_or_key: str) -> Feature:
        """Refused (ConflictError) while a published plan version uses the feature."""
        feature = await self.feature(id_or_key)
        if feature.archived:
            raise ConflictError(f"feature {feature.key!r} is already archived", field="feature")
        for plan in await self._store.list_plans():
            if plan.status == "published" and any(c.feature_key == feature.key for c in plan.rate_cards):
                raise ConflictError(
                    f"feature {feature.key!r} is used by published plan {plan.key!r} v{plan.version}; "
                    "archive the plan first",
                    field="feature",
                )
        now = self._clock.now()
        archived = replace(feature, archived_at=now, updated_at=now)
        await self._store.update_feature(archived)
        return archived

    # -- plans --------------------------------------------------------------------------------

    async def _check_plan_body(self, billing_cadence: str, phases: Sequence[Phase]) -> None:
        periods.parse_cadence(billing_cadence, field="billingCadence")
        features = {f.key: f for f in await self._store.list_features()}
        aggregations = {m.slug: m.aggregation.value for m in await self._metering.meters()}
        check_phases(
            phases,
            features=features,
            meter_aggregations=aggregations,
            parse_duration=lambda text, field: periods.parse_cadence(text, field=field),
        )

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
        check_key(key)
        check_name(name)
        check_currency(currency)
        meta = check_metadata(metadata)
        await self._check_plan_body(billing_cadence, phases)
        versions = await self._store.list_plans(key=key)
        draft = next((p for p in versions if p.status == "draft"), None)
        if draft is not None:
            raise ConflictError(
                f"plan {key!r} already has a draft (v{draft.version}); update or publish it first", field="key"
            )
        now = self._clock.now()
        plan = Plan(
            id=new_id(now),
            key=key,
            version=max((p.version for p in versions), default=0) + 1,
            name=name,
            currency=currency,
            billing_cadence=billing_cadence,
            phases=tuple(phases),
            description=description,
            metadata=meta,
            managed_by=managed_by,
            created_at=now,
            updated_at=now,
        )
        await self._store.insert_plan(plan)
        return plan

    async def _plan_by_id(self, plan_id: str) -> Plan:
        plan = await self._store.get_plan(plan_id)
        if plan is None:
            raise NotFoundError(f"plan {plan_id!r} not found", field="plan")
        return plan

    @staticmethod
    def _refuse_unless(plan: Plan, status: str, doing: str) -> None:
        if plan.status != status:
            raise ConflictError(
                f"plan {plan.key!r} v{plan.version} is {plan.status}; only a {status} version can be {doing}",
                field="status",
            )

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
        plan = await self._plan_by_id(plan_id)
        self._refuse_unless(plan, "draft", "changed")
        check_name(name)
        meta = check_metadata(metadata)
        await self._check_plan_body(billing_cadence, phases)
        updated = replace(
            plan,
            name=name,
            billing_cadence=billing_cadence,
            phases=tuple(phases),
            description=description,
            metadata=meta,
            updated_at=self._clock.now(),
        )
        await self._store.update_plan(updated)
        return updated

    async def delete_plan(self, plan_id: str) -> None:
        """Only a draft can be deleted."""
        plan = await self._plan_by_id(plan_id)
        self._refuse_unless(plan, "draft", "deleted")
        if not await self._store.delete_plan(plan_id):
            raise NotFoundError(f"plan {plan_id!r} not found", field="plan")

    async def publish_plan(self, plan_id: str) -> Plan:
        """Draft -> published; the previously published version of the key is archived (its subscriptions
        stay on it until migrated)."""
        plan = await self._plan_by_id(plan_id)
        self._refuse_unless(plan, "draft", "published")
        await self._check_plan_body(plan.billing_cadence, plan.phases)  # a feature may have gone since the draft
        now = self._clock.now()
        changed = [
            replace(p, status="archived", archived_at=now, updated_at=now)
            for p in await self._store.list_plans(key=plan.key)
            if p.status == "published"
        ]
        published = replace(plan, status="published", published_at=now, updated_at=now)
        await self._store.update_plans([*changed, published])
        return published

    async def archive_plan(self, plan_id: str) -> Plan:
        plan = await self._plan_by_id(plan_id)
        self._refuse_unless(plan, "published", "archived")
        now = self._clock.now()
        archived = replace(plan, status="archived", archived_at=now, updated_at=now)
        await self._store.update_plan(archived)
        return archived

    async def plans(self, *, key: str | None = None, status: str | None = None) -> list[Plan]:
        if status is not None and status not in PLAN_STATUSES:
            raise ValidationError(f"status must be one of {', '.join(PLAN_STATUSES)}", field="status")
        return [p for p in await self._store.list_plans(key=key) if status is None or p.status == status]

    async def plan(self, id_or_key: str, version: int | None = None) -> Plan:
        """By id; or by key: the given version, else the published one, else the latest."""
        if version is None:
            by_id = await self._store.get_plan(id_or_key)
            if by_id is not None:
                return by_id
        versions = await self._store.list_plans(key=id_or_key)
        if version is not None:
            found = next((p for p in versions if p.version == version), None)
        else:
            found = next((p for p in versions if p.status == "published"), versions[-1] if versions else None)
        if found is None:
            which = f" version {version}" if version is not None else ""
            raise NotFoundError(f"plan {id_or_key!r}{which} not found", field="plan")
        return found

    async def _published_plan(self, key: str, version: int | None) -> Plan:
        versions = await self._store.list_plans(key=key)
        if not versions:
            raise NotFoundError(f"plan {key!r} not found", field="plan.key")
        if version is None:
            found = next((p for p in versions if p.status == "published"), None)
            if found is None:
                raise ValidationError(f"plan {key!r} has no published version", field="plan.key")
            return found
        found = next((p for p in versions if p.version == version), None)
        if found is None:
            raise NotFoundError(f"plan {key!r} has no version {version}", field="plan.version")
        if found.status != "published":
            raise ValidationError(
                f"plan {key!r} v{version} is {found.status}; subscribe to a published version", field="plan.version"
            )
        return found

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
        now = self._clock.now()
        customer = Customer(
            id=new_id(now),
            key=key,
            name=name,
            subjects=check_subjects(subjects),
            email=email,
            currency=currency,
            billing_address=billing_address,
            description=description,
            stripe_customer_id=stripe_customer_id,
            metadata=check_metadata(metadata),
            managed_by=managed_by,
            created_at=now,
            updated_at=now,
        )
        customer = self._checked_customer(customer)
        await self._store.insert_customer(customer)
        return customer

    @staticmethod
    def _checked_customer(customer: Customer) -> Customer:
        check_key(customer.key)
        check_name(customer.name)
        subjects = check_subjects(customer.subjects)
        check_email(customer.email)
        if customer.currency is not None:
            check_currency(customer.currency)
        check_address(customer.billing_address)
        return replace(customer, subjects=subjects, metadata=check_metadata(customer.metadata))

    async def update_customer(self, customer: Customer) -> Customer:
        """Replace the mutable fields of a stored customer (same id)."""
        stored = await self._store.get_customer(customer.id)
        if stored is None or stored.id != customer.id or stored.deleted_at is not None:
            raise NotFoundError(f"customer {customer.id!r} not found", field="customer")
        checked = self._checked_customer(customer)
        if checked.currency is not None:
            for subscription in await self._ongoing(stored.id):
                if subscription.currency != checked.currency:
                    raise ValidationError(
                        f"the customer's subscription bills in {subscription.currency}", field="currency"
                    )
        updated = replace(checked, created_at=stored.created_at, deleted_at=None, updated_at=self._clock.now())
        await self._store.update_customer(updated)
        return updated

    async def delete_customer(self, id_or_key: str) -> None:
        """Refused (ConflictError) while the customer has an active or scheduled subscription."""
        customer = await self._live_customer(id_or_key)
        if await self._ongoing(customer.id):
            raise ConflictError(
                f"customer {customer.key!r} has an active or scheduled subscription; cancel it first", field="customer"
            )
        now = self._clock.now()
        await self._store.update_customer(replace(customer, deleted_at=now, updated_at=now))

    async def _ongoing(self, customer_id: str) -> list[Subscription]:
        """Subscriptions active now or later (a zero-length one, canceled before it began, does not count)."""
        now = self._clock.now()
        return [
            s
            for s in await self._store.list_subscriptions(customer_id=customer_id)
            if s.active_to is None or (s.active_to > now and s.active_to > s.active_from)
        ]

    async def customers(self, *, include_deleted: bool = False) -> list[Customer]:
        return await self._store.list_customers(include_deleted=include_deleted)

    async def customer(self, id_or_key: str) -> Customer:
        found = await self._store.get_customer(id_or_key)
        if found is None:
            raise NotFoundError(f"customer {id_or_key!r} not found", field="customer")
        return found

    async def _live_customer(self, id_or_key: str) -> Customer:
        return await CustomerSubjects(self._store).customer(id_or_key)

    async def subjects_of(self, customer: str) -> list[str]:
        """For the meter query's `customer` filter (metering's CustomerResolver)."""
        return await CustomerSubjects(self._store).subjects_of(customer)

    # -- subscriptions ------------------------------------------------------------------------

    @staticmethod
    def _aware(moment: object, field: str) -> datetime:
        if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
            raise ValidationError(f"{field} must be a date-time with a time zone", field=field)
        return moment

    @staticmethod
    def _overlaps(subscription: Subscription, start: datetime) -> bool:
        """Whether `subscription` is active at some instant at or after `start`."""
        if subscription.active_to is not None and subscription.active_to <= subscription.active_from:
            return False
        return subscription.active_to is None or subscription.active_to > start

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
        now = self._clock.now()
        start = self._aware(active_from, "activeFrom") if active_from is not None else now
        anchor = self._aware(billing_anchor, "billingAnchor") if billing_anchor is not None else start
        meta = check_metadata(metadata)
        owner = await self._live_customer(customer)
        plan = await self._published_plan(plan_key, plan_version)
        if owner.currency is not None and owner.currency != plan.currency:
            raise ValidationError(
                f"plan {plan.key!r} bills in {plan.currency} but customer {owner.key!r} pays in {owner.currency}",
                field="plan.key",
            )
        for other in await self._store.list_subscriptions(customer_id=owner.id):
            if self._overlaps(other, start):
                raise ConflictError(
                    f"customer {owner.key!r} already has subscription {other.id} from {other.active_from.isoformat()}"
                    + (f" to {other.active_to.isoformat()}" if other.active_to else ""),
                    field="customer",
                )
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
            at = self._aware(timing, "timing")
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
        plan = await self._published_plan(plan_key, plan_version)
        if plan.id == current.plan_id:
            raise ConflictError(
                f"subscription {current.id} is already on plan {plan.key!r} v{plan.version}", field="plan.key"
            )
        at = self._end_at(current, timing)
        if current.active_to is not None and at > current.active_to:
            raise ConflictError(
                f"subscription {current.id} ends at {current.active_to.isoformat()}, before the change", field="timing"
            )
        owner = await self._live_customer(current.customer_id)
        if owner.currency is not None and owner.currency != plan.currency:
            raise ValidationError(
                f"plan {plan.key!r} bills in {plan.currency} but customer {owner.key!r} pays in {owner.currency}",
                field="plan.key",
            )
        for other in await self._store.list_subscriptions(customer_id=current.customer_id):
            if other.id != current.id and self._overlaps(other, at):
                raise ConflictError(
                    f"customer {owner.key!r} already has subscription {other.id} from {other.active_from.isoformat()}",
                    field="customer",
                )
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
        customer_id = (await self.customer(customer)).id if customer is not None else None
        return await self._store.list_subscriptions(customer_id=customer_id)

    async def subscription(self, subscription_id: str) -> Subscription:
        found = await self._store.get_subscription(subscription_id)
        if found is None:
            raise NotFoundError(f"subscription {subscription_id!r} not found", field="subscription")
        return found

    async def subscription_at(self, customer: str, at: datetime) -> Subscription | None:
        """The customer's subscription active at `at`, if any."""
        owner = await self.customer(customer)
        for subscription in await self._store.list_subscriptions(customer_id=owner.id):
            if subscription.active_from <= at and (subscription.active_to is None or at < subscription.active_to):
                return subscription
        return None

    # -- entitlements -------------------------------------------------------------------------

    async def entitlement_value(self, customer: str, feature: str, at: datetime | None = None) -> EntitlementValue:
        """From the customer's active subscription: the rate card for the feature that carries an entitlement.
        Metered: usage in the current usage period from meter rollups (no scan of events).

        The usage period is the template's (else the plan's billing cadence) anchored at the subscription's
        billing anchor; usage counts from max(period start, subscription start) up to `at`."""
        at = self._aware(at, "at") if at is not None else self._clock.now()
        owner = await self._live_customer(customer)
        wanted = await self.feature(feature)
        subscription = await self.subscription_at(owner.id, at)
        if subscription is None:
            return EntitlementValue(has_access=False)
        plan = await self._plan_by_id(subscription.plan_id)
        card = self._entitled_card(plan, subscription, wanted.key, at)
        if card is None or card.entitlement is None:
            return EntitlementValue(has_access=False)
        template = card.entitlement
        if template.type == "boolean":
            return EntitlementValue(has_access=True)
        if template.type == "static":
            return EntitlementValue(has_access=True, config=template.config)
        limit = template.limit if template.limit is not None else Decimal(0)
        cadence = periods.parse_cadence(template.usage_period or subscription.billing_cadence)
        period_start, _ = periods.period_containing(subscription.billing_anchor, cadence, at)
        usage = await self._usage(wanted, owner, max(period_start, subscription.active_from), at)
        return EntitlementValue(
            has_access=(not template.hard) or usage < limit,
            balance=max(limit - usage, Decimal(0)),
            usage=usage,
            overage=max(usage - limit, Decimal(0)),
        )

    @staticmethod
    def _entitled_card(plan: Plan, subscription: Subscription, feature_key: str, at: datetime) -> RateCard | None:
        phase = CatalogService._phase_at(plan, subscription, at)
        return next((c for c in phase.rate_cards if c.feature_key == feature_key and c.entitlement is not None), None)

    @staticmethod
    def _phase_at(plan: Plan, subscription: Subscription, at: datetime) -> Phase:
        """The plan phase running at `at`: phases follow one another from the subscription's start."""
        start = subscription.active_from
        for phase in plan.phases:
            if phase.duration is None:
                return phase
            end = periods.add_cadence(start, periods.parse_cadence(phase.duration), 1)
            if at < end:
                return phase
            start = end
        return plan.phases[-1]

    async def _usage(self, feature: Feature, customer: Customer, start: datetime, end: datetime) -> Decimal:
        if feature.meter_slug is None or not customer.subjects or start >= end:
            return Decimal(0)
        rows = await self._metering.query(
            feature.meter_slug,
            MeterQuery(start=start, end=end, subjects=customer.subjects, filter_group_by=feature.filters),
        )
        return sum((row.value for row in rows), Decimal(0))
