"""UnitGrantService: OpenMeter's grants on a customer's metered entitlement — create, list, void — and the
entitlement's burn-down history. The entitlement value (EntitlementService.entitlement_value) counts the grants
through the same burn-down."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tollway.billing.catalog.customer_contexts import CustomerContexts
from tollway.billing.catalog.entitlement_service import EntitlementService
from tollway.billing.customers import Customer
from tollway.billing.features import Feature
from tollway.billing.grants.burndown import BurnDown, Segment
from tollway.billing.grants.model import EXPIRATION_UNITS, RECURRENCE_INTERVALS, UnitGrant
from tollway.billing.grants.ports import UnitGrantStore
from tollway.billing.grants.resets import EntitlementReset
from tollway.billing.periods import add_cadence, parse_cadence
from tollway.billing.ports import CatalogStore
from tollway.billing.subscriptions import Subscription, active_at
from tollway.clock import Clock
from tollway.errors import NotFoundError, ValidationError
from tollway.ids import new_id

WINDOWS = {"MINUTE": timedelta(minutes=1), "HOUR": timedelta(hours=1), "DAY": timedelta(days=1)}
MAX_WINDOWS = 1000


@dataclass(frozen=True)
class NewUnitGrant:
    amount: Decimal
    effective_at: datetime
    priority: int = 1
    expiration_duration: str | None = None
    expiration_count: int | None = None
    min_rollover: Decimal = Decimal(0)
    max_rollover: Decimal | None = None
    recurrence_interval: str | None = None  # DAY | WEEK | MONTH | YEAR or an ISO-8601 duration
    recurrence_anchor: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryWindow:
    start: datetime
    end: datetime
    usage: Decimal
    balance_at_start: Decimal


@dataclass(frozen=True)
class History:
    windows: tuple[HistoryWindow, ...]
    segments: tuple[Segment, ...]


class UnitGrantService:
    def __init__(
        self,
        store: UnitGrantStore,
        catalog: CatalogStore,
        clock: Clock,
        contexts: CustomerContexts,
        entitlements: EntitlementService,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self._contexts = contexts
        self._entitlements = entitlements
        self.on_change: Callable[[], Awaitable[None]] | None = None  # the gateway's rules read the grants again

    async def _entitlement(self, customer_ref: str, feature_key: str) -> tuple[Customer, Feature]:
        context = await self._contexts.customer_context(customer_ref)
        feature = context.feature(feature_key)
        if feature.meter_slug is None:
            raise ValidationError(
                f"feature {feature_key!r} has no meter: only metered entitlements take grants", field="featureKey"
            )
        return context.customer, feature

    async def customer_of_subject(self, subject: str) -> str:
        customer = await self._catalog.customer_of_subject(subject)
        if customer is None:
            raise NotFoundError(f"no customer pays for subject {subject!r}", field="subjectIdOrKey")
        return customer.id

    async def create(self, customer_ref: str, feature_key: str, new: NewUnitGrant) -> UnitGrant:
        customer, feature = await self._entitlement(customer_ref, feature_key)
        if new.amount <= 0:
            raise ValidationError("amount must be more than 0", field="amount")
        if not 1 <= new.priority <= 255:
            raise ValidationError(f"priority must be from 1 to 255, got {new.priority}", field="priority")
        expires_at = None
        if new.expiration_duration is not None:
            unit = EXPIRATION_UNITS.get(new.expiration_duration)
            count = new.expiration_count or 0
            if unit is None:
                raise ValidationError(
                    f"expiration.duration must be one of {', '.join(EXPIRATION_UNITS)}", field="expiration.duration"
                )
            if count < 1:
                raise ValidationError("expiration.count must be an integer >= 1", field="expiration.count")
            cadence = parse_cadence(unit.format(n=count), field="expiration", minimum=timedelta(hours=1))
            expires_at = add_cadence(new.effective_at, cadence, 1)
        interval = new.recurrence_interval
        if interval is not None:
            interval = RECURRENCE_INTERVALS.get(interval, interval)
            parse_cadence(interval, field="recurrence.interval")
        for name, value in (("minRolloverAmount", new.min_rollover), ("maxRolloverAmount", new.max_rollover)):
            if value is not None and value < 0:
                raise ValidationError(f"{name} must be at least 0", field=name)
        now = self._clock.now()
        grant = UnitGrant(
            id=new_id(now),
            customer_id=customer.id,
            feature_key=feature.key,
            amount=new.amount,
            priority=new.priority,
            effective_at=new.effective_at,
            created_at=now,
            expiration_duration=new.expiration_duration,
            expiration_count=new.expiration_count,
            expires_at=expires_at,
            min_rollover=new.min_rollover,
            max_rollover=new.max_rollover,
            recurrence_interval=interval,
            recurrence_anchor=(new.recurrence_anchor or new.effective_at) if interval is not None else None,
            metadata=dict(new.metadata),
        )
        created = await self._store.create_grant(grant)
        await self._changed()
        return created

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()

    async def list(self, customer_ref: str, feature_key: str) -> list[UnitGrant]:
        customer, feature = await self._entitlement(customer_ref, feature_key)
        return await self._store.list_grants(customer.id, feature.key)

    async def void(self, grant_id: str) -> UnitGrant:
        grant = await self._store.get_grant(grant_id)
        if grant is None:
            raise NotFoundError(f"grant {grant_id!r} not found", field="grantId")
        voided = await self._store.void_grant(grant_id, at=self._clock.now())
        await self._changed()
        return voided

    async def reset(
        self,
        customer_ref: str,
        feature_key: str,
        *,
        effective_at: datetime | None = None,
        retain_anchor: bool = False,
        preserve_overage: bool = False,
    ) -> EntitlementReset:
        """Start a new usage period of the customer's metered entitlement at `effective_at` (default now; not in
        the future, after the subscription's start and after the entitlement's last reset)."""
        customer, feature = await self._entitlement(customer_ref, feature_key)
        now = self._clock.now()
        at = effective_at or now
        if at > now:
            raise ValidationError("effectiveAt must not be in the future", field="effectiveAt")
        found = await self._burn(customer, feature, now)
        if found is None:
            raise NotFoundError(
                f"customer {customer.key!r} has no metered entitlement to {feature.key!r} now", field="featureKey"
            )
        if at < found[1].active_from:
            raise ValidationError("effectiveAt must not be before the subscription's start", field="effectiveAt")
        earlier = await self._store.list_resets(customer.id, feature.key)
        if earlier and at <= earlier[-1].effective_at:
            raise ValidationError(
                f"effectiveAt must be after the entitlement's last reset ({earlier[-1].effective_at.isoformat()})",
                field="effectiveAt",
            )
        reset = EntitlementReset(
            id=new_id(now),
            customer_id=customer.id,
            feature_key=feature.key,
            effective_at=at,
            created_at=now,
            retain_anchor=retain_anchor,
            preserve_overage=preserve_overage,
        )
        await self._store.create_reset(reset)
        await self._changed()
        return reset

    async def granted_now(self) -> dict[tuple[str, str], Decimal]:
        """(customer id, feature key) -> what the unit grants make available in the entitlement's current window
        on top of the plan's limit: what the gateway's enforcement adds to a hard limit."""
        at = self._clock.now()
        found: dict[tuple[str, str], Decimal] = {}
        pairs = sorted(
            {(g.customer_id, g.feature_key) for g in await self._store.list_all_grants()}
            | {(r.customer_id, r.feature_key) for r in await self._store.list_resets()}
        )
        for customer_id, feature_key in pairs:
            try:
                customer, feature = await self._entitlement(customer_id, feature_key)
                burned = await self._burn(customer, feature, at)
            except (NotFoundError, ValidationError):
                continue  # the customer or the feature is gone
            if burned is not None:
                found[(customer_id, feature_key)] = burned[0].available - burned[2]
        return found

    async def _burn(
        self, customer: Customer, feature: Feature, at: datetime
    ) -> tuple[BurnDown, Subscription, Decimal] | None:
        context = await self._contexts.customer_context(customer.id)
        subscription = active_at(list(context.subscriptions), at)
        if subscription is None:
            return None
        plan = context.plans[subscription.plan_id]
        card = next((c for c in plan.rate_cards if c.feature_key == feature.key and c.entitlement is not None), None)
        template = card.entitlement if card is not None else None
        if template is not None and template.type != "metered":
            return None
        allowance = template.limit if template is not None and template.limit is not None else Decimal(0)
        period = (template.usage_period if template is not None else None) or subscription.billing_cadence
        grants = await self._store.list_grants(customer.id, feature.key)
        burned = await self._entitlements.burn_down(customer, feature, subscription, allowance, period, grants, at)
        return burned, subscription, allowance

    async def history(
        self, customer_ref: str, feature_key: str, *, window_size: str, start: datetime | None, end: datetime | None
    ) -> History:
        customer, feature = await self._entitlement(customer_ref, feature_key)
        at = end or self._clock.now()
        found = await self._burn(customer, feature, at)
        if found is None:
            raise NotFoundError(
                f"customer {customer.key!r} has no metered entitlement to {feature.key!r} now", field="featureKey"
            )
        burned = found[0]
        step = WINDOWS.get(window_size)
        if step is None:
            raise ValidationError("windowSize must be MINUTE, HOUR or DAY", field="windowSize")
        first = start or burned.period_start or at
        if (at - first) / step > MAX_WINDOWS:
            raise ValidationError(
                f"at most {MAX_WINDOWS} windows: narrow from/to or widen windowSize", field="windowSize"
            )
        windows: list[HistoryWindow] = []
        moment = first
        while moment < at:
            stop = min(moment + step, at)
            if moment == burned.period_start and burned.segments:
                balance = burned.segments[0].balance_at_start
            else:
                earlier = await self._burn(customer, feature, moment)
                balance = earlier[0].balance if earlier is not None else Decimal(0)
            usage = await self._entitlements.usage_between(feature, customer, moment, stop)
            windows.append(HistoryWindow(moment, stop, usage, balance))
            moment = stop
        return History(tuple(windows), tuple(burned.segments))
