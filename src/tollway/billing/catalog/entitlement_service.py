"""Entitlement values: what a customer's subscription grants for a feature, and the usage counted against it.

A value is read often (a gateway checks it before calls), so when nothing changed it costs the
catalog's version (the customer's catalog rows are kept, see customer_contexts.py) and the meter definition, and
the usage comes from a running total (a kept snapshot of the period's rollups plus the few events
after it, tollway.metering.running_totals).

Built from the catalog store, metering, the clock, the customer contexts, the running totals and (where grants
are kept) the unit grant store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tollway.billing import periods
from tollway.billing.catalog.customer_contexts import CustomerContexts
from tollway.billing.customers import Customer
from tollway.billing.entitlements import (
    EntitlementTemplate,
    EntitlementValue,
    FeatureAccess,
    feature_access,
    gated_features,
    metered_access,
)
from tollway.billing.features import Feature
from tollway.billing.grants.burndown import BurnDown, burn_down
from tollway.billing.grants.model import UnitGrant
from tollway.billing.grants.ports import UnitGrantStore
from tollway.billing.grants.resets import EntitlementReset, anchor_at, usage_period_at
from tollway.billing.plans import Phase, Plan, RateCard
from tollway.billing.ports import CatalogStore
from tollway.billing.subscriptions import Subscription, active_at
from tollway.billing.validation import check_aware
from tollway.clock import Clock
from tollway.metering.aggregation import MeterQuery
from tollway.metering.running_totals import RunningTotals
from tollway.metering.service import MeteringService


@dataclass(frozen=True)
class GrantedEntitlement:
    """One entitlement a customer's active subscription grants: a rate card's template for a feature, for each
    subject the customer pays for (OpenMeter's entitlements are per subject)."""

    customer: Customer
    subject: str
    subscription: Subscription
    feature: Feature
    rate_card: str
    template: EntitlementTemplate
    period_start: datetime  # the current usage period
    period_end: datetime
    usage_period: str  # ISO-8601 duration
    anchor: datetime | None = None  # the usage periods' anchor when a reset moved it (else the billing anchor)


def phase_at(plan: Plan, subscription: Subscription, at: datetime) -> Phase:
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


class EntitlementService:
    def __init__(
        self,
        store: CatalogStore,
        metering: MeteringService,
        clock: Clock,
        contexts: CustomerContexts,
        running_totals: RunningTotals,
        *,
        unit_grants: UnitGrantStore | None = None,
    ) -> None:
        """With `unit_grants`, metered entitlement values count the customer's unit grants (OpenMeter's
        burn-down)."""
        self._store = store
        self._metering = metering
        self._clock = clock
        self._contexts = contexts
        self._running_totals = running_totals
        self._unit_grants = unit_grants
        self._kept_gated: tuple[int, frozenset[str]] | None = None

    async def entitlement_value(self, customer: str, feature: str, at: datetime | None = None) -> EntitlementValue:
        """The customer's access to the feature by the one rule (`feature_access`): from the rate card of the
        active subscription's plan for the feature. Metered: usage in the current usage period from meter
        rollups (no scan of events).

        The usage period is the template's (else the plan's billing cadence) anchored at the subscription's
        billing anchor; usage counts from max(period start, subscription start) up to `at`."""
        at = check_aware(at, "at") if at is not None else self._clock.now()
        context = await self._contexts.customer_context(customer)
        owner, wanted = context.customer, context.feature(feature)
        subscription = active_at(list(context.subscriptions), at)
        cards: list[RateCard] = []
        if subscription is not None:
            phase = phase_at(context.plans[subscription.plan_id], subscription, at)
            cards = [c for c in phase.rate_cards if c.feature_key == wanted.key]
        card = next((c for c in cards if c.entitlement is not None), None)
        template = card.entitlement if card is not None else None
        access = feature_access(
            subscribed=subscription is not None,
            entitlement=template,
            priced=bool(cards),  # a rate card for the feature: a usage or a flat price
            has_meter=wanted.meter_slug is not None,
            gated=wanted.key in await self._gated(context.version),
        )
        if access is FeatureAccess.NONE:
            return EntitlementValue(has_access=False)
        if access is FeatureAccess.UNLIMITED or template is None or subscription is None:
            return EntitlementValue(has_access=True)
        if template.type == "boolean":
            return EntitlementValue(has_access=True)
        if template.type == "static":
            return EntitlementValue(has_access=True, config=template.config)
        limit = template.limit if template.limit is not None else Decimal(0)
        usage_period = template.usage_period or subscription.billing_cadence
        cadence = periods.parse_cadence(usage_period)
        resets = await self.resets_of(owner.id, wanted.key)
        period_start, _ = usage_period_at(subscription.billing_anchor, cadence, resets, at)
        grants = await self._grants_of(owner, wanted)
        if grants or resets:
            burned = await self.burn_down(owner, wanted, subscription, limit, usage_period, grants, at, resets)
            return EntitlementValue(
                has_access=metered_access(template, burned.usage, granted=burned.available - limit),
                balance=burned.balance,
                usage=burned.usage,
                overage=burned.overage,
                total_available_grant_amount=burned.available - limit,
            )
        usage = await self._usage(wanted, owner, max(period_start, subscription.active_from), at)
        return EntitlementValue(
            has_access=metered_access(template, usage),
            balance=max(limit - usage, Decimal(0)),
            usage=usage,
            overage=max(usage - limit, Decimal(0)),
        )

    async def usage_between(self, feature: Feature, customer: Customer, start: datetime, end: datetime) -> Decimal:
        """The feature's usage by the customer's subjects in [start, end)."""
        return await self._usage(feature, customer, start, end)

    async def _grants_of(self, customer: Customer, feature: Feature) -> list[UnitGrant]:
        if self._unit_grants is None:
            return []
        return await self._unit_grants.list_grants(customer.id, feature.key)

    async def resets_of(self, customer_id: str, feature_key: str) -> list[EntitlementReset]:
        """The entitlement's manual resets, oldest first."""
        if self._unit_grants is None:
            return []
        return await self._unit_grants.list_resets(customer_id, feature_key)

    async def burn_down(
        self,
        customer: Customer,
        feature: Feature,
        subscription: Subscription,
        allowance: Decimal,
        usage_period: str,
        grants: list[UnitGrant],
        at: datetime,
        resets: list[EntitlementReset] | None = None,
    ) -> BurnDown:
        """The entitlement's burn-down up to `at`: the plan's allowance first, then the grants."""

        async def between(start: datetime, end: datetime) -> Decimal:
            return await self._usage(feature, customer, start, end)

        return await burn_down(
            grants=grants,
            allowance=allowance,
            anchor=subscription.billing_anchor,
            usage_period=usage_period,
            counted_from=subscription.active_from,
            at=at,
            usage_between=between,
            resets=await self.resets_of(customer.id, feature.key) if resets is None else resets,
        )

    async def granted_entitlements(self, at: datetime | None = None) -> list[GrantedEntitlement]:
        """Every entitlement the live customers' subscriptions active at `at` (default now) grant, by customer key,
        then subject, then feature key."""
        at = check_aware(at, "at") if at is not None else self._clock.now()
        granted: list[GrantedEntitlement] = []
        for listed in sorted(await self._store.list_customers(), key=lambda c: c.key):
            context = await self._contexts.customer_context(listed.id)
            subscription = active_at(list(context.subscriptions), at)
            if subscription is None:
                continue
            phase = phase_at(context.plans[subscription.plan_id], subscription, at)
            for card in sorted(phase.rate_cards, key=lambda c: c.feature_key or ""):
                if card.entitlement is None or card.feature_key is None:
                    continue
                feature = context.feature(card.feature_key)
                every = card.entitlement.usage_period or subscription.billing_cadence
                resets = await self.resets_of(context.customer.id, feature.key)
                start, end = usage_period_at(subscription.billing_anchor, periods.parse_cadence(every), resets, at)
                for subject in context.customer.subjects:
                    granted.append(
                        GrantedEntitlement(
                            context.customer,
                            subject,
                            subscription,
                            feature,
                            card.key,
                            card.entitlement,
                            start,
                            end,
                            every,
                            anchor_at(subscription.billing_anchor, resets, at),
                        )
                    )
        return granted

    async def _gated(self, version: int) -> frozenset[str]:
        """The features some published (or archived) plan grants with a boolean entitlement, read again when
        the catalog changed."""
        kept = self._kept_gated
        if kept is not None and kept[0] == version:
            return kept[1]
        gated = gated_features(
            (card.feature_key, card.entitlement)
            for plan in await self._store.list_plans()
            if plan.status != "draft"
            for card in plan.rate_cards
            if card.feature_key is not None and card.entitlement is not None
        )
        self._kept_gated = (version, gated)
        return gated

    async def _usage(self, feature: Feature, customer: Customer, start: datetime, end: datetime) -> Decimal:
        if feature.meter_slug is None or not customer.subjects or start >= end:
            return Decimal(0)
        meter = await self._metering.meter(feature.meter_slug)
        total = await self._running_totals.total(meter, customer.subjects, feature.filters, start, end)
        if total is not None:
            return total
        rows = await self._metering.query(
            feature.meter_slug,
            MeterQuery(start=start, end=end, subjects=customer.subjects, filter_group_by=feature.filters),
        )
        return sum((row.value for row in rows), Decimal(0))
