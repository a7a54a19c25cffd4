"""The limits that apply to a subject's calls, read from the catalog once per catalog change (pure).

`SpendRules` is a snapshot the gateway keeps in memory: subject -> its customer, the customer's
subscriptions and their plans, and each limitable feature's measure (its meter and filters). At a
moment, `entitlements_at` answers which entitlements govern the subject's calls, from memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from tollway.billing import periods
from tollway.billing.customers import Customer
from tollway.billing.entitlements import EntitlementTemplate, gated_features
from tollway.billing.features import Feature
from tollway.billing.grants.resets import EntitlementReset, usage_period_at
from tollway.billing.plans import Phase, Plan
from tollway.billing.subscriptions import Subscription, active_at
from tollway.metering.meters import Meter
from tollway.spend.budgets import Budget
from tollway.spend.measure import ADDITIVE, FeatureMeasure
from tollway.spend.rate_limits import EACH, RateLimit
from tollway.spend.windows import PeriodCache, Window


@dataclass(frozen=True, slots=True)
class CustomerRules:
    customer: Customer
    subscriptions: tuple[Subscription, ...]


@dataclass(frozen=True, slots=True)
class Entitled:
    """One entitlement governing a call: the feature, its template, and the usage window it counts in."""

    feature: Feature
    template: EntitlementTemplate
    subscription: Subscription
    window: Window  # the usage period; usage counts from max(window.start, subscription start)

    @property
    def counted_from(self) -> datetime:
        return max(self.window.start, self.subscription.active_from)


@dataclass(frozen=True)
class SpendRules:
    version: tuple[int, int] | int = -1
    by_subject: Mapping[str, CustomerRules] = field(default_factory=dict)
    plans: Mapping[str, Plan] = field(default_factory=dict)
    features: Mapping[str, Feature] = field(default_factory=dict)  # live features by key
    measures: Mapping[str, FeatureMeasure] = field(default_factory=dict)  # feature key -> measure (additive meters)
    gated: frozenset[str] = frozenset()  # features some plan grants with a boolean entitlement (gated_features)
    limited_plans: frozenset[str] = frozenset()  # plan ids with a hard metered entitlement
    customer_budgets: Mapping[str, tuple[Budget, ...]] = field(default_factory=dict)  # by customer key
    consumer_budgets: Mapping[str, tuple[Budget, ...]] = field(default_factory=dict)  # by consumer username
    tokens: FeatureMeasure | None = None  # every token of a call (token budgets)
    provider_cost: FeatureMeasure | None = None  # a call's provider cost in USD (money budgets without a plan)
    # (customer id, feature key) -> what the customer's unit grants make available in the entitlement's current
    # window, on top of the plan's limit (a hard limit is reached when the allowance and the grants are used up)
    granted: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)
    windows: PeriodCache = field(default_factory=PeriodCache, compare=False)  # usage periods found once per period
    # customer key -> the settled prepaid credit balance of a prepaid-only customer (in its plan's currency)
    credits: Mapping[str, Decimal] = field(default_factory=dict)
    # (customer id, feature key) -> the entitlement's manual resets (each starts a usage period: a new window)
    resets: Mapping[tuple[str, str], tuple[EntitlementReset, ...]] = field(default_factory=dict)
    # (scope, target) -> the rate limits on it; target "*": on each entity of the scope
    rate_limits: Mapping[tuple[str, str], tuple[RateLimit, ...]] = field(default_factory=dict)
    key_budgets: Mapping[str, tuple[Budget, ...]] = field(default_factory=dict)  # by API key id

    def rates_for(self, scope: str, target: str | None) -> tuple[RateLimit, ...]:
        """The rate limits on one entity of a scope (its own and those on each entity of the scope)."""
        if not self.rate_limits or target is None:
            return ()
        return self.rate_limits.get((scope, target), ()) + self.rate_limits.get((scope, EACH), ())

    def plan_limits(self, plan_id: str) -> bool:
        """Whether entitlements of the plan can refuse a call (a hard metered one, or a gate it may lack)."""
        return plan_id in self.limited_plans or bool(self.gated)

    @classmethod
    def build(
        cls,
        version: tuple[int, int] | int,
        customers: Iterable[Customer],
        subscriptions: Iterable[Subscription],
        plans: Iterable[Plan],
        features: Iterable[Feature],
        meters: Iterable[Meter],
        budgets: Iterable[Budget] = (),
        rate_limits: Iterable[RateLimit] = (),
    ) -> SpendRules:
        plan_map = {plan.id: plan for plan in plans}
        live = {feature.key: feature for feature in features if feature.archived_at is None}
        meter_map = {meter.slug: meter for meter in meters}
        measures: dict[str, FeatureMeasure] = {}
        for feature in live.values():
            meter = meter_map.get(feature.meter_slug or "")
            if meter is not None and meter.aggregation in ADDITIVE:
                try:
                    measures[feature.key] = FeatureMeasure.of(meter, feature.filters)
                except ValueError:
                    continue  # a filter on a dimension the meter lacks: nothing to count
        by_customer: dict[str, list[Subscription]] = {}
        for subscription in subscriptions:
            by_customer.setdefault(subscription.customer_id, []).append(subscription)
        by_subject: dict[str, CustomerRules] = {}
        for customer in customers:
            if customer.deleted_at is not None:
                continue
            rules = CustomerRules(customer, tuple(by_customer.get(customer.id, ())))
            for subject in customer.subjects:
                by_subject[subject] = rules
        gated = gated_features(
            (card.feature_key, card.entitlement)
            for plan in plan_map.values()
            if plan.status != "draft"
            for card in plan.rate_cards
            if card.feature_key is not None and card.entitlement is not None
        )
        limited = frozenset(
            plan.id
            for plan in plan_map.values()
            if any(
                card.entitlement is not None and card.entitlement.type == "metered" and card.entitlement.hard
                for card in plan.rate_cards
            )
        )
        budgets_by_customer: dict[str, list[Budget]] = {}
        by_consumer: dict[str, list[Budget]] = {}
        by_key: dict[str, list[Budget]] = {}
        for budget in budgets:
            if budget.scope == "customer":
                budgets_by_customer.setdefault(budget.target, []).append(budget)
            elif budget.scope == "consumer":
                by_consumer.setdefault(budget.target, []).append(budget)
            elif budget.scope == "key":
                by_key.setdefault(budget.target, []).append(budget)
        rates: dict[tuple[str, str], list[RateLimit]] = {}
        for rate in rate_limits:
            rates.setdefault((rate.scope, rate.target), []).append(rate)
        tokens = meter_map.get("llm_tokens")
        cost = meter_map.get("llm_cost")
        return cls(
            version,
            by_subject,
            plan_map,
            live,
            measures,
            gated,
            limited,
            {key: tuple(found) for key, found in budgets_by_customer.items()},
            {key: tuple(found) for key, found in by_consumer.items()},
            FeatureMeasure.of(tokens, {}) if tokens is not None else None,
            FeatureMeasure.of(cost, {}) if cost is not None else None,
            rate_limits={key: tuple(found) for key, found in rates.items()},
            key_budgets={key: tuple(found) for key, found in by_key.items()},
        )

    def subscription_at(self, rules: CustomerRules, at: datetime) -> Subscription | None:
        subscription = active_at(rules.subscriptions, at)
        return subscription if subscription is not None and subscription.plan_id in self.plans else None

    def priced_at(self, subscription: Subscription, at: datetime) -> frozenset[str]:
        """The features the plan prices (a rate card for the feature, usage or flat) in the phase running at `at`."""
        cards = phase_at(self.plans[subscription.plan_id], subscription, at).rate_cards
        return frozenset(card.feature_key for card in cards if card.feature_key is not None)

    def entitlements_at(self, subscription: Subscription, at: datetime) -> dict[str, Entitled]:
        """The plan's entitlements at `at` by feature key (the phase running then)."""
        plan = self.plans[subscription.plan_id]
        found: dict[str, Entitled] = {}
        for card in phase_at(plan, subscription, at).rate_cards:
            if card.feature_key is None or card.entitlement is None:
                continue
            feature = self.features.get(card.feature_key)
            if feature is None:
                continue
            template = card.entitlement
            cadence = template.usage_period or subscription.billing_cadence
            resets = self.resets.get((subscription.customer_id, feature.key))
            if resets:  # the same period function as the entitlement value's
                window = Window(
                    *usage_period_at(subscription.billing_anchor, periods.parse_cadence(cadence), resets, at)
                )
            else:
                window = self.windows.window(subscription.billing_anchor, cadence, at)
            found[feature.key] = Entitled(feature, template, subscription, window)
        return found


def phase_at(plan: Plan, subscription: Subscription, at: datetime) -> Phase:
    """The plan phase running at `at`: phases follow one another from the subscription's start."""
    return phase_span(plan, subscription, at)[0]


def phase_span(plan: Plan, subscription: Subscription, at: datetime) -> tuple[Phase, datetime, datetime | None]:
    """The plan phase running at `at`, when it started and when it ends (None: it runs on)."""
    start = subscription.active_from
    for phase in plan.phases:
        if phase.duration is None:
            return phase, start, None
        end = periods.add_cadence(start, periods.parse_cadence(phase.duration), 1)
        if at < end:
            return phase, start, end
        start = end
    return plan.phases[-1], start, None


KEEP_AFTER_WINDOW = timedelta(hours=1)  # a counter outlives its window a little (calls still settling)
