"""Metered entitlements as the balance worker reads them: every active subscription's metered entitlement
rate cards, each with its current usage period and value (from the catalog's entitlement value, which reads
running totals: no scan of events)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tollway.billing import periods
from tollway.billing.catalog import Catalog
from tollway.billing.catalog.entitlement_service import phase_at
from tollway.billing.customers import Customer
from tollway.billing.entitlements import EntitlementTemplate, EntitlementValue
from tollway.billing.features import Feature
from tollway.billing.grants.resets import usage_period_at
from tollway.billing.subscriptions import Subscription, active_at
from tollway.errors import DomainError


@dataclass(frozen=True)
class MeteredReading:
    customer: Customer
    feature: Feature
    subscription: Subscription
    template: EntitlementTemplate
    value: EntitlementValue
    limit: Decimal
    period_start: datetime  # the usage period [start, end) the value is for
    period_end: datetime

    @property
    def target(self) -> str:
        return f"{self.customer.id}/{self.feature.key}"

    @property
    def usage_from(self) -> datetime:
        return max(self.period_start, self.subscription.active_from)


class CatalogEntitlements:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def readings(self, at: datetime, features: Collection[str] | None = None) -> list[MeteredReading]:
        """Every metered entitlement active at `at` (only of `features`, keys, when given)."""
        found: list[MeteredReading] = []
        for customer in await self._catalog.customers.customers():
            if not customer.subjects:
                continue
            try:
                context = await self._catalog.contexts.customer_context(customer.id)
            except DomainError:
                continue  # deleted meanwhile
            subscription = active_at(list(context.subscriptions), at)
            if subscription is None:
                continue
            plan = context.plans[subscription.plan_id]
            phase = phase_at(plan, subscription, at)
            for card in phase.rate_cards:
                template = card.entitlement
                if template is None or template.type != "metered" or card.feature_key is None:
                    continue
                if features is not None and card.feature_key not in features:
                    continue
                feature = context.features_by_key().get(card.feature_key)
                if feature is None:
                    continue
                cadence = periods.parse_cadence(template.usage_period or subscription.billing_cadence)
                resets = await self._catalog.entitlements.resets_of(customer.id, feature.key)  # a reset starts a period
                start, end = usage_period_at(subscription.billing_anchor, cadence, resets, at)
                value = await self._catalog.entitlements.entitlement_value(customer.id, feature.key, at)
                found.append(
                    MeteredReading(
                        customer=customer,
                        feature=feature,
                        subscription=subscription,
                        template=template,
                        value=value,
                        limit=template.limit if template.limit is not None else Decimal(0),
                        period_start=start,
                        period_end=end,
                    )
                )
        return found
