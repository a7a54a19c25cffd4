"""Plans: versioned drafts of phases and rate cards, published and archived.

Built from the catalog store, metering (a metered entitlement needs a SUM or COUNT meter) and the clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tollway.billing import periods
from tollway.billing.plans import Phase, Plan
from tollway.billing.ports import CatalogStore
from tollway.billing.validation import (
    check_currency,
    check_key,
    check_metadata,
    check_name,
    check_phases,
)
from tollway.clock import Clock
from tollway.errors import ConflictError, NotFoundError, ValidationError
from tollway.ids import new_id
from tollway.metering.service import MeteringService

PLAN_STATUSES = ("draft", "published", "archived")


class PlanService:
    def __init__(self, store: CatalogStore, metering: MeteringService, clock: Clock) -> None:
        self._store = store
        self._metering = metering
        self._clock = clock

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

    async def plan_by_id(self, plan_id: str) -> Plan:
        """By id only (NotFoundError, field plan)."""
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
        plan = await self.plan_by_id(plan_id)
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
        plan = await self.plan_by_id(plan_id)
        self._refuse_unless(plan, "draft", "deleted")
        if not await self._store.delete_plan(plan_id):
            raise NotFoundError(f"plan {plan_id!r} not found", field="plan")

    async def publish_plan(self, plan_id: str) -> Plan:
        """Draft -> published; the previously published version of the key is archived (its subscriptions
        stay on it until migrated)."""
        plan = await self.plan_by_id(plan_id)
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
        plan = await self.plan_by_id(plan_id)
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

    async def published_plan(self, key: str, version: int | None) -> Plan:
        """What a subscription may start on: the key's published version, or the given version if published
        (NotFoundError, field plan.key / plan.version; ValidationError when not published)."""
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
