"""A caller's admission plan: what admission works out once per caller (subject, API key, model), rules snapshot
and stretch of time in which none of it changes, so that a call only measures its worst case against it.

A plan holds the caller's customer and active subscription, the templates of the limits in force (entitlements,
the priced features' usage counters, budgets; amount 0), its rate limits, how its calls are priced, and the
distinct measures those limits read a call with (each measured once per call, however many limits share it).
It is valid from the latest to the earliest of the moments that change any of it: a subscription starting or
ending, a plan phase, an entitlement's usage period, the billing period, a budget's window. A plan whose limits
depend on more than the call (a tiered or capped plan price, read at the period usage of each call's moment)
is not `static`: its calls take admission's general way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tollway.billing.subscriptions import Subscription
from tollway.errors import ForbiddenError
from tollway.metering.llm import LlmCall
from tollway.spend.compiled import Compiled, compile_plan
from tollway.spend.hold import prepaid_governed
from tollway.spend.limits import FOREVER, Amount, Governed, LimitsBuilder, with_amount, worst
from tollway.spend.measure import FeatureMeasure
from tollway.spend.ports import Ask
from tollway.spend.rate_limits import slide_at
from tollway.spend.rates import MEASURES, rate_governed
from tollway.spend.rules import CustomerRules, SpendRules, phase_span
from tollway.spend.selection import Rated, Selection, Selections

Pricing = tuple[Amount, str]  # a call's cost function and the currency it counts in
_ONE = Decimal(1)
_LONG_AGO = datetime.min.replace(tzinfo=FOREVER.tzinfo)


@dataclass(slots=True)
class Plan:
    rules: SpendRules
    valid_from: datetime
    valid_until: datetime
    customer: CustomerRules | None
    subscription: Subscription | None
    selection: Selection
    needs_worst: bool  # the caller's calls need their worst case (priced on a plan, or limited)
    unsubscribed: str | None = None  # who is refused for lacking a subscription (no_subscription: refuse)
    static: bool = False  # the calls can be governed from this plan alone
    priced: bool = False  # its calls are priced on the customer's plan (a static plan's calls, x-tollway-cost)
    measures: tuple[Amount, ...] = ()  # the distinct measures the limits below read a call with
    # (index of its measure, template or None for a gate the plan lacks, the feature's key)
    entitled: tuple[tuple[int, Governed | None, str], ...] = ()
    usage: tuple[tuple[int, Governed], ...] = ()
    rates: tuple[tuple[int | None, Rated], ...] = ()  # index None: counts 1 (requests, in flight)
    budgets: tuple[tuple[int, Governed], ...] = ()
    pricing: Pricing | None = None
    compiled: Compiled | None = None  # a static plan whose calls' asks are worked out from integers (compiled.py)
    _buckets: list[Governed | None] = field(default_factory=list)  # each rate limit's, in its current bucket
    _indexes: dict[Amount, int] = field(default_factory=dict)

    def governs(self) -> bool:
        return bool(self.entitled or self.usage or self.rates or self.budgets)

    def govern(self, events: Sequence[LlmCall], now: datetime) -> list[Governed]:
        """The limits in force on a call whose worst case on each target is `events` (a static plan only)."""
        if len(events) == 1:
            one = events[0]
            amounts = [measure(one) for measure in self.measures]
        else:
            amounts = [worst(measure, events) for measure in self.measures]
        governed: list[Governed] = []
        for index, template, feature in self.entitled:
            amount = amounts[index]
            if amount <= 0:
                continue
            if template is None:
                assert self.customer is not None
                raise ForbiddenError(
                    f"The plan of customer '{self.customer.customer.key}' does not include the feature "
                    f"'{feature}' this request would use.",
                    code="feature_not_entitled",
                )
            governed.append(with_amount(template, amount))
        for index, template in self.usage:
            governed.append(with_amount(template, amounts[index]))
        cost_of = self.pricing[0] if self.pricing is not None else None
        for index, (measured, (rate, entity, who)) in enumerate(self.rates):
            counts = None if measured is None else amounts[measured]
            if rate.window is None:  # in flight
                found = rate_governed(rate, entity, who, cost_of, events, now, amount=counts)
                if found is not None:
                    governed.append(found)
                continue
            slide = slide_at(now, rate.window_s)
            template = self._buckets[index]
            if template is None or template.slide is None or template.slide.bucket != slide.bucket:
                template = rate_governed(rate, entity, who, cost_of, events, now, amount=counts)
                if template is None:
                    continue
                self._buckets[index] = template  # the limit's keys and window in this bucket
            a = template.ask
            governed.append(
                Governed(
                    Ask(
                        a.key,
                        _ONE if counts is None else counts,
                        a.limit,
                        None,
                        a.fresh_ttl_s,
                        a.previous,
                        slide.weight,
                    ),
                    template.amount_of,
                    template.metered,
                    template.window,
                    template.counted_from,
                    template.name,
                    template.what,
                    template.per,
                    rate=rate,
                    slide=slide,
                )
            )
        for index, template in self.budgets:
            governed.append(with_amount(template, amounts[index]))
        return governed

    def _measure(self, amount_of: Amount) -> int:
        index = self._indexes.get(amount_of)
        if index is None:
            index = self._indexes[amount_of] = len(self.measures)
            self.measures = (*self.measures, amount_of)
        return index

    def _within(self, start: datetime | None, end: datetime | None) -> None:
        if start is not None and start > self.valid_from:
            self.valid_from = start
        if end is not None and end < self.valid_until:
            self.valid_until = end


def build_plan(
    limits: LimitsBuilder,
    selections: Selections,
    rules: SpendRules,
    subject: str,
    key_id: str | None,
    model: str | None,
    now: datetime,
    *,
    refuse_unsubscribed: bool,
) -> Plan:
    selected = selections.of(rules, subject, key_id, model)
    customer = selected.customer
    subscription = rules.subscription_at(customer, now) if customer is not None else None
    needs_worst = refuse_unsubscribed or selected.budgeted or bool(selected.rates) or subscription is not None
    plan = Plan(rules, _LONG_AGO, FOREVER, customer, subscription, selected, needs_worst)
    if customer is not None:  # a subscription starting or ending changes the plan
        for other in customer.subscriptions:
            for moment in (other.active_from, other.active_to):
                if moment is not None:
                    plan._within(moment if moment <= now else None, moment if moment > now else None)
    if (customer is None or subscription is None) and refuse_unsubscribed:
        plan.unsubscribed = f"customer '{customer.customer.key}'" if customer is not None else f"subject '{subject}'"
        return plan
    priced = limits.priced_features(rules, subscription, now) if subscription is not None else []
    if any(feature.unit is None for feature in priced):
        return plan  # a tiered or capped price: read at each call's period usage (the general way)
    if subscription is not None:
        _, phase_from, phase_until = phase_span(rules.plans[subscription.plan_id], subscription, now)
        plan._within(phase_from, phase_until)
    for feature in priced:
        plan._within(feature.window.start, feature.window.end)
    if customer is not None and subscription is not None and rules.plan_limits(subscription.plan_id):
        valid_from, valid_until, entitled = limits.entitled(rules, customer, subscription, now)
        plan._within(valid_from, valid_until)
        plan.entitled = tuple(
            (plan._measure(measure.amount), template, _feature_key(rules, measure)) for measure, template in entitled
        )
    plan.static = True
    plan.priced = bool(priced)
    if rules.tokens is None or rules.provider_cost is None:
        return plan
    customer_subjects = customer.customer.subjects if customer is not None else (subject,)
    plan.usage = tuple((plan._measure(t.amount_of), t) for t in limits.usage_templates(priced, customer_subjects))
    cost_of = limits.cost_of(subscription is not None, priced, {}, rules.provider_cost)
    plan.pricing = (cost_of, rules.plans[subscription.plan_id].currency if subscription is not None else "USD")
    rates: list[tuple[int | None, Rated]] = []
    for rated in selected.rates:
        metric = rated[0].metric
        if metric in ("requests", "in_flight"):
            rates.append((None, rated))
        else:
            rates.append((plan._measure(cost_of if metric == "cost" else MEASURES[metric]), rated))
    plan.rates = tuple(rates)
    plan._buckets = [None] * len(rates)
    budgets: list[tuple[int, Governed]] = []
    for budget in selected.budgets:
        mine = customer_subjects if budget.scope == "customer" else (subject,)
        who = f"API key '{budget.target}'" if budget.scope == "key" else f"{budget.scope} '{budget.target}'"
        template, lasting = limits.budget_template(
            budget, mine, who, subscription, customer_subjects, priced, {}, rules.tokens, rules.provider_cost, now
        )
        if not lasting:
            plan.static = False
            return plan
        template = prepaid_governed(budget, template)
        plan._within(template.window.start, template.window.end)
        budgets.append((plan._measure(template.amount_of), template))
    plan.budgets = tuple(budgets)
    if not plan.usage:
        key = customer.customer.key if customer is not None else ""
        plan.compiled = compile_plan(plan.measures, plan.entitled, key, plan.rates, plan.budgets, cost_of, now)
    return plan


def _feature_key(rules: SpendRules, measure: FeatureMeasure) -> str:
    return next((key for key, found in rules.measures.items() if found is measure), "")


class Plans:
    """`build_plan` memoised per rules snapshot, caller, and the span in which the plan holds."""

    def __init__(self, limits: LimitsBuilder, selections: Selections, max_entries: int = 100_000) -> None:
        self._limits = limits
        self._selections = selections
        self._rules: SpendRules | None = None
        self._plans: dict[tuple[str, str | None, str | None], Plan] = {}
        self._max = max_entries

    def of(
        self,
        rules: SpendRules,
        subject: str,
        key_id: str | None,
        model: str | None,
        now: datetime,
        *,
        refuse_unsubscribed: bool,
    ) -> Plan:
        if rules is not self._rules:
            self._rules, self._plans = rules, {}
        plan = self._plans.get((subject, key_id, model))
        if plan is None or not plan.valid_from <= now < plan.valid_until:
            plan = build_plan(
                self._limits,
                self._selections,
                rules,
                subject,
                key_id,
                model,
                now,
                refuse_unsubscribed=refuse_unsubscribed,
            )
            if len(self._plans) >= self._max:
                self._plans.clear()
            self._plans[(subject, key_id, model)] = plan
        return plan
