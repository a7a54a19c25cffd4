"""Reading the stored catalog and making a plan's changes through the Catalog, in order."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TypedDict

from tollway.billing.apply.changes import (
    ApplyPlan,
    ArchiveFeature,
    ArchivePlan,
    Change,
    CreateCustomer,
    CreateFeature,
    PublishPlan,
    RenameFeature,
    ReplaceFeature,
    Subscribe,
    SyncMeters,
    UpdateCustomer,
)
from tollway.billing.apply.desired import DesiredCatalog, DesiredCustomer, StoredCatalog, keep_unset
from tollway.billing.apply.diff import plan_apply
from tollway.billing.catalog import Catalog
from tollway.billing.customers import Address
from tollway.errors import DomainError
from tollway.metering.service import MeteringService


async def load_stored(catalog: Catalog, metering: MeteringService) -> StoredCatalog:
    return StoredCatalog(
        features=tuple(await catalog.features.features()),
        plans=tuple(await catalog.plans.plans()),
        customers=tuple(await catalog.customers.customers()),
        subscriptions=tuple(await catalog.subscriptions.subscriptions()),
        meters=tuple(await metering.meters()),
    )


class ApplyFailed(Exception):
    """A write failed half-way: `done` of the plan's changes were made; running the apply again completes it."""

    def __init__(self, change: Change, error: DomainError, done: int, total: int) -> None:
        line = change.lines[0] if change.lines else type(change).__name__
        super().__init__(
            f"apply stopped at '{line}': {error.message} ({done} of {total} changes made; "
            "what is stored is consistent: fix the cause and apply again to complete it)"
        )
        self.change = change
        self.error = error
        self.done = done


async def execute(plan: ApplyPlan, catalog: Catalog, metering: MeteringService, now: datetime) -> None:
    """Make the plan's changes in order; ApplyFailed names the change that failed and how many were made."""
    for done, change in enumerate(plan.changes):
        try:
            await _make(change, catalog, metering, now)
        except DomainError as exc:
            raise ApplyFailed(change, exc, done, len(plan.changes)) from exc


async def _make(change: Change, catalog: Catalog, metering: MeteringService, now: datetime) -> None:
    if isinstance(change, SyncMeters):
        await metering.sync_meters([m for m in change.meters if not m.built_in])
    elif isinstance(change, CreateFeature | ReplaceFeature):
        if isinstance(change, ReplaceFeature):
            await catalog.features.archive_feature(change.stored.id)
        feature = change.feature
        await catalog.features.create_feature(
            key=feature.key,
            name=feature.name,
            meter_slug=feature.meter_slug,
            filters=feature.filters,
            managed_by="config",
        )
    elif isinstance(change, RenameFeature):
        await catalog.store.update_feature(replace(change.stored, name=change.name, updated_at=now))
    elif isinstance(change, ArchiveFeature):
        await catalog.features.archive_feature(change.stored.id)
    elif isinstance(change, PublishPlan):
        if change.stale_draft is not None:
            await catalog.plans.delete_plan(change.stale_draft.id)
        desired = change.plan
        draft = await catalog.plans.create_plan(
            key=desired.key,
            name=desired.name,
            currency=desired.currency,
            billing_cadence=desired.billing_cadence,
            phases=desired.phases,
            description=desired.description,
            managed_by="config",
        )
        await catalog.plans.publish_plan(draft.id)
    elif isinstance(change, ArchivePlan):
        await catalog.plans.archive_plan(change.stored.id)
    elif isinstance(change, CreateCustomer):
        await catalog.customers.create_customer(key=change.customer.key, **_customer_fields(change.customer))
    elif isinstance(change, UpdateCustomer):
        # The record as it is now, not as planned: a field the file leaves out keeps what was recorded since
        # the plan was made (the Stripe link the sync stored meanwhile).
        fresh = await catalog.customers.customer(change.stored.id)
        await catalog.customers.update_customer(replace(fresh, **_customer_fields(keep_unset(change.customer, fresh))))
    elif isinstance(change, Subscribe):
        await catalog.subscriptions.create_subscription(
            customer=change.customer_key,
            plan_key=change.plan_key,
            plan_version=change.pinned_version,
            active_from=change.active_from,
        )
    else:
        await catalog.subscriptions.change_subscription(
            change.current.id, plan_key=change.plan_key, plan_version=change.pinned_version, timing="immediate"
        )


async def apply_catalog(
    desired: DesiredCatalog,
    catalog: Catalog,
    metering: MeteringService,
    now: datetime,
    *,
    dry_run: bool = False,
) -> ApplyPlan:
    """Plan against the store and, unless `dry_run` or the plan has problems, make the changes."""
    plan = plan_apply(desired, await load_stored(catalog, metering), now)
    if not dry_run and not plan.problems:
        await execute(plan, catalog, metering, now)
    return plan


class _CustomerFields(TypedDict):
    """What the file sets on a customer, created or updated."""

    name: str
    subjects: tuple[str, ...]
    email: str | None
    currency: str | None
    billing_address: Address | None
    description: str
    stripe_customer_id: str | None
    managed_by: str


def _customer_fields(customer: DesiredCustomer) -> _CustomerFields:
    return _CustomerFields(
        name=customer.name,
        subjects=customer.subjects,
        email=customer.email,
        currency=customer.currency,
        billing_address=customer.billing_address,
        description=customer.description,
        stripe_customer_id=customer.stripe_customer_id,
        managed_by="config",
    )
