"""The limits in force on one call, each as a `Governed`: entitlements of the customer's plan and budgets.

Pure construction over the rules snapshot, except where a money budget on a plan needs the period's
usage of each priced feature (its marginal price): those come from usage counters (seeded from the
metered usage like every counter), read from the counter store, never from the database per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tollway.billing.entitlements import FeatureAccess, feature_access
from tollway.billing.pricing.model import UnitPrice, UsageTerms
from tollway.billing.subscriptions import Subscription
from tollway.errors import ForbiddenError
from tollway.metering.llm import LlmCall
from tollway.spend.budgets import Budget
from tollway.spend.measure import FeatureMeasure
from tollway.spend.ports import Ask
from tollway.spend.pricing import line_amount, marginal_cost
from tollway.spend.rate_limits import RateLimit, Slide
from tollway.spend.rules import KEEP_AFTER_WINDOW, CustomerRules, SpendRules, phase_at, phase_span
from tollway.spend.usage import UsageReader
from tollway.spend.windows import Window, window_at

Amount = Callable[[LlmCall], Decimal]  # how much of a limit a call (its usage record) uses
_ZERO = Decimal(0)
FOREVER = datetime.max.replace(tzinfo=UTC)
TASK_TTL = timedelta(hours=24)  # an agent task's counter is forgotten a day after its first call
PER_WINDOW = {
    "billing_period": "per billing period",
    "month": "per calendar month",
    "day": "per day",
    "hour": "per hour",
    "lifetime": "in total",
}


# built per call, never changed after: not frozen (a frozen __init__ costs a setattr per field)
@dataclass(slots=True, unsafe_hash=True)
class Governed:
    """A limit in force on one call: its counter ask, how the call's usage counts on it, how to read the
    metered usage of its window (seeding and reconciling), and how a refusal names it."""

    ask: Ask
    amount_of: Amount
    metered: Callable[[datetime], Awaitable[Decimal]]
    window: Window
    counted_from: datetime
    name: str  # e.g. "entitlement:output-tokens", "budget:acme-monthly"
    what: str  # e.g. "the 'output-tokens' entitlement of customer 'acme'"
    per: str  # e.g. "per usage period", "per day"
    hint: str = ""  # what the caller can do about a refusal
    rate: RateLimit | None = None  # a rate limit's counter (a sliding window, or the calls in flight)
    slide: Slide | None = None  # where now falls in the rate limit's window
    budget: Budget | None = None  # the budget it is (its on_exceeded: refuse or degrade)


@dataclass(frozen=True, slots=True)
class PricedFeature:
    """A usage rate card of the plan: the feature's measure and terms, and its usage counter this period."""

    key: str
    measure: FeatureMeasure
    terms: UsageTerms
    counter: str  # usage counter key
    counted_from: datetime
    window: Window
    unit: Decimal | None = None  # a plain unit price (no free quantity, discount or cap): cost = delta * unit


def worst(amount_of: Amount, calls: Sequence[LlmCall]) -> Decimal:
    if len(calls) == 1:  # one target: the common case
        return amount_of(calls[0])
    return max((amount_of(call) for call in calls), default=Decimal(0))


def with_amount(template: Governed, amount: Decimal) -> Governed:
    """The limit `template` stands for, on a call that counts `amount` on it."""
    a = template.ask
    return Governed(
        Ask(a.key, amount, a.limit, a.expires_at, a.fresh_ttl_s, a.previous, a.weight),
        template.amount_of,
        template.metered,
        template.window,
        template.counted_from,
        template.name,
        template.what,
        template.per,
        template.hint,
        template.rate,
        template.slide,
        template.budget,
    )


def _expires(window: Window) -> datetime | None:
    return None if window.end is None else window.end + KEEP_AFTER_WINDOW


class LimitsBuilder:
    def __init__(self, usage: UsageReader) -> None:
        self._usage = usage
        # (rules version, subscription, period, phase) -> the plan's priced features: built once per period
        self._priced: dict[tuple[object, ...], list[PricedFeature]] = {}
        # id of a priced-features list -> (the list, its usage counters' templates)
        self._usage_templates: dict[int, tuple[Sequence[PricedFeature], list[Governed]]] = {}
        # budget id -> (the budget, the priced features, the subjects counted, its limit in the current window, who)
        self._budgets: dict[str, tuple[Budget, Sequence[PricedFeature], tuple[str, ...], Governed, str]] = {}
        # id of a priced-features list of plain unit prices -> (the list, the cost of a call under it)
        self._costs: dict[int, tuple[Sequence[PricedFeature], Amount]] = {}
        # subscription id -> (rules snapshot, valid from, valid until, its entitlements as templates)
        self._entitled: dict[
            str, tuple[SpendRules, datetime, datetime, list[tuple[FeatureMeasure, Governed | None]]]
        ] = {}

    def entitlements(
        self,
        rules: SpendRules,
        customer: CustomerRules,
        subscription: Subscription,
        events: Sequence[LlmCall],
        now: datetime,
    ) -> list[Governed]:
        """The hard entitlements (and the gates) of the plan on this call. What they are is worked out once per
        rules snapshot and usage period (`_entitled`), not per call: a call only measures its worst case."""
        found: list[Governed] = []
        for measure, template in self.entitled(rules, customer, subscription, now)[2]:
            amount = worst(measure.amount, events)
            if amount <= 0:
                continue
            if template is None:
                raise ForbiddenError(
                    f"The plan of customer '{customer.customer.key}' does not include the feature "
                    f"'{_feature_key(rules, measure)}' this request would use.",
                    code="feature_not_entitled",
                )
            found.append(with_amount(template, amount))
        return found

    def entitled(
        self, rules: SpendRules, customer: CustomerRules, subscription: Subscription, now: datetime
    ) -> tuple[datetime, datetime, list[tuple[FeatureMeasure, Governed | None]]]:
        """The plan's limiting entitlements as templates (None: a gate the plan lacks), and the span [from, until)
        in which they stay what they are; worked out once per rules snapshot and span."""
        cached = self._entitled.get(subscription.id)
        if cached is None or cached[0] is not rules or not cached[1] <= now < cached[2]:
            cached = (rules, *self._entitled_now(rules, customer, subscription, now))
            if len(self._entitled) >= 10_000:
                self._entitled.clear()
            self._entitled[subscription.id] = cached
        return cached[1], cached[2], cached[3]

    def _entitled_now(
        self, rules: SpendRules, customer: CustomerRules, subscription: Subscription, now: datetime
    ) -> tuple[datetime, datetime, list[tuple[FeatureMeasure, Governed | None]]]:
        """The plan's limiting entitlements at `now` (a template each, None for a gate the plan lacks), and the
        span [from, until) in which they stay what they are (their usage periods and the plan phase)."""
        entitled = rules.entitlements_at(subscription, now)
        priced = rules.priced_at(subscription, now) if rules.gated else frozenset()
        _, valid_from, valid_until = phase_span(rules.plans[subscription.plan_id], subscription, now)
        valid_until = valid_until or FOREVER

        def refused(key: str) -> bool:  # the plan has no entitlement for the feature: the one access rule decides
            access = feature_access(
                subscribed=True, entitlement=None, priced=key in priced, has_meter=True, gated=key in rules.gated
            )
            return access is FeatureAccess.NONE

        found: list[tuple[FeatureMeasure, Governed | None]] = []
        for key, measure in rules.measures.items():
            entitlement = entitled.get(key)
            hard = entitlement is not None and entitlement.template.type == "metered" and entitlement.template.hard
            if entitlement is None:
                if refused(key):
                    found.append((measure, None))
                continue
            if not hard:
                continue
            window, start = entitlement.window, entitlement.counted_from
            valid_from = max(valid_from, window.start)
            valid_until = min(valid_until, window.end or FOREVER)
            subjects, filters = customer.customer.subjects, entitlement.feature.filters
            template = Governed(
                ask=Ask(
                    f"ent:{subscription.id}:{key}:{window.tag}",
                    Decimal(0),
                    (entitlement.template.limit or Decimal(0))
                    + rules.granted.get((customer.customer.id, key), Decimal(0)),
                    _expires(window),
                ),
                amount_of=measure.amount,
                metered=self._reader(measure, subjects, filters, start),
                window=window,
                counted_from=start,
                name=f"entitlement:{key}",
                what=f"the '{key}' entitlement of customer '{customer.customer.key}'",
                per="per usage period",
            )
            found.append((measure, template))
        return valid_from, valid_until, found

    def _reader(
        self, measure: FeatureMeasure, subjects: Sequence[str], filters: dict[str, tuple[str, ...]], start: datetime
    ) -> Callable[[datetime], Awaitable[Decimal]]:
        async def metered(at: datetime) -> Decimal:
            return await self._usage.usage(measure.meter, subjects, filters, start, at)

        return metered

    # -- budgets -------------------------------------------------------------------------------------

    def priced_features(self, rules: SpendRules, subscription: Subscription, now: datetime) -> list[PricedFeature]:
        """The plan's usage rate cards on limitable features, with their usage counters for this billing period."""
        plan = rules.plans[subscription.plan_id]
        period = rules.windows.window(subscription.billing_anchor, subscription.billing_cadence, now)
        phase = phase_at(plan, subscription, now)
        cache = (rules.version, id(rules.plans), subscription.id, subscription.plan_id, period.start, phase.key)
        found = self._priced.get(cache)
        if found is not None:
            return found
        start = max(period.start, subscription.active_from)
        found = []
        for card in phase.rate_cards:
            if card.usage is None or card.feature_key is None or card.feature_key not in rules.measures:
                continue
            counter = f"use:{subscription.id}:{card.feature_key}:{period.tag}"
            terms = card.usage
            unit = (
                terms.price.amount if isinstance(terms.price, UnitPrice) and terms == UsageTerms(terms.price) else None
            )
            found.append(
                PricedFeature(card.feature_key, rules.measures[card.feature_key], terms, counter, start, period, unit)
            )
        if len(self._priced) >= 10_000:
            self._priced.clear()
        self._priced[cache] = found
        return found

    def usage_asks(
        self, priced: Sequence[PricedFeature], subjects: Sequence[str], events: Sequence[LlmCall]
    ) -> list[Governed]:
        """Soft asks that keep the period usage of each priced feature whose price depends on it (a tiered price, a
        free quantity, a discount or a cap: what its marginal price is read at; a plain unit price needs none)."""
        return [with_amount(t, worst(t.amount_of, events)) for t in self.usage_templates(priced, subjects)]

    def usage_templates(self, priced: Sequence[PricedFeature], subjects: Sequence[str]) -> list[Governed]:
        """The usage asks of `priced` as templates (amount 0), built once per priced-features list."""
        cached = self._usage_templates.get(id(priced))
        if cached is None or cached[0] is not priced:
            templates = [
                Governed(
                    ask=Ask(feature.counter, _ZERO, None, _expires(feature.window)),
                    amount_of=feature.measure.amount,
                    metered=self._reader(feature.measure, subjects, _filters(feature), feature.counted_from),
                    window=feature.window,
                    counted_from=feature.counted_from,
                    name=f"usage:{feature.key}",
                    what=f"the period's usage of '{feature.key}'",
                    per="per billing period",
                )
                for feature in priced
                if feature.unit is None
            ]
            if len(self._usage_templates) >= 10_000:
                self._usage_templates.clear()
            cached = self._usage_templates[id(priced)] = (priced, templates)
        return cached[1]

    def budget(
        self,
        budget: Budget,
        subjects: Sequence[str],
        who: str,
        subscription: Subscription | None,
        customer_subjects: Sequence[str],
        priced: Sequence[PricedFeature],
        period_usage: dict[str, Decimal],
        tokens: FeatureMeasure,
        provider_cost: FeatureMeasure,
        events: Sequence[LlmCall],
        now: datetime,
    ) -> Governed:
        template, _ = self.budget_template(
            budget, subjects, who, subscription, customer_subjects, priced, period_usage, tokens, provider_cost, now
        )
        return with_amount(template, worst(template.amount_of, events))

    def budget_template(
        self,
        budget: Budget,
        subjects: Sequence[str],
        who: str,
        subscription: Subscription | None,
        customer_subjects: Sequence[str],
        priced: Sequence[PricedFeature],
        period_usage: dict[str, Decimal],
        tokens: FeatureMeasure,
        provider_cost: FeatureMeasure,
        now: datetime,
    ) -> tuple[Governed, bool]:
        """The budget's limit in its window at `now` (amount 0), and whether it stays what it is for the whole
        window (False: its price is read at the period usage of each call's moment: a tiered or capped price)."""
        cached = self._budgets.get(budget.id)
        if (
            cached is not None
            and cached[0] is budget
            and cached[1] is priced
            and cached[2] == subjects
            and cached[4] == who
            and cached[3].window.start <= now
            and (cached[3].window.end is None or now < cached[3].window.end)
        ):
            return cached[3], True  # the budget's limit in this window, as worked out at its first call
        if subscription is not None:
            window = window_at(
                budget.window, now, anchor=subscription.billing_anchor, cadence=subscription.billing_cadence
            )
        else:
            window = window_at(budget.window, now)
        start = window.start
        amount_of: Amount
        metered: Callable[[datetime], Awaitable[Decimal]]
        if budget.kind == "tokens":
            amount_of, metered = tokens.amount, self._reader(tokens, subjects, {}, start)
        elif subscription is None or not priced:
            amount_of, metered = provider_cost.amount, self._reader(provider_cost, subjects, {}, start)
        else:
            amount_of = self._plan_cost(priced, period_usage)
            metered = self._plan_spend(priced, subjects, customer_subjects, start)
        if budget.scope == "key":  # usage events carry the consumer, not the key: counted by the counters only
            metered = _nothing_metered
        found = Governed(
            ask=Ask(f"bud:{budget.id}:{window.tag}", _ZERO, budget.limit if budget.hard else None, _expires(window)),
            amount_of=amount_of,
            metered=metered,
            window=window,
            counted_from=start,
            name=f"budget:{budget.key}",
            what=f"the {budget.kind} budget '{budget.key}' of {who}",
            per=PER_WINDOW[budget.window],
            budget=budget,
        )
        # kept for the window's next calls unless its price depends on the period's usage (a tiered or capped
        # plan price is read at the usage of each call's moment)
        if budget.kind == "tokens" or subscription is None or all(f.unit is not None for f in priced):
            if len(self._budgets) >= 100_000:
                self._budgets.clear()
            self._budgets[budget.id] = (budget, priced, tuple(subjects), found, who)
            return found, True
        return found, False

    def cost_of(
        self,
        subscribed: bool,
        priced: Sequence[PricedFeature],
        period_usage: dict[str, Decimal],
        provider_cost: FeatureMeasure,
    ) -> Amount:
        """A call's cost to the customer: its plan's prices at the period's usage; provider cost without a plan."""
        return self._plan_cost(priced, period_usage) if subscribed and priced else provider_cost.amount

    def _plan_cost(self, priced: Sequence[PricedFeature], period_usage: dict[str, Decimal]) -> Amount:
        """`_plan_cost`, one function per priced-features list where its prices are plain unit prices (they do not
        read the period usage): the call's price and a money budget's measure are then measured once per call."""
        if any(feature.unit is None for feature in priced):
            return _plan_cost(priced, period_usage)
        cached = self._costs.get(id(priced))
        if cached is None or cached[0] is not priced:
            if len(self._costs) >= 10_000:
                self._costs.clear()
            cached = self._costs[id(priced)] = (priced, _linear_cost(priced) or _plan_cost(priced, {}))
        return cached[1]

    def task(
        self, subject: str, task: str, limit: Decimal, cost_of: Amount, events: Sequence[LlmCall], now: datetime
    ) -> Governed:
        """An agent task's budget: the calls that name the task share it for TASK_TTL after its first call."""
        window = Window(now, None)
        return Governed(
            ask=Ask(f"task:{subject}:{task}", worst(cost_of, events), limit, now + TASK_TTL),
            amount_of=cost_of,
            metered=_nothing_metered,  # events do not carry the task: counted here only
            window=window,
            counted_from=now,
            name=f"task:{task}",
            what=f"the budget of task '{task}' (x-tollway-task-budget)",
            per="in total",
        )

    def _plan_spend(
        self,
        priced: Sequence[PricedFeature],
        subjects: Sequence[str],
        customer_subjects: Sequence[str],
        start: datetime,
    ) -> Callable[[datetime], Awaitable[Decimal]]:
        """What the scope's usage since `start` (within the current billing period) cost: each feature's
        usage priced as the most recent units of the customer's usage this period."""

        async def metered(at: datetime) -> Decimal:
            total = Decimal(0)
            for feature in priced:
                period_total = await self._usage.usage(
                    feature.measure.meter, customer_subjects, _filters(feature), feature.counted_from, at
                )
                since = max(start, feature.counted_from)
                mine = await self._usage.usage(feature.measure.meter, subjects, _filters(feature), since, at)
                mine = min(mine, period_total)
                total += line_amount(period_total, feature.terms) - line_amount(period_total - mine, feature.terms)
            return total

        return metered


async def _nothing_metered(at: datetime) -> Decimal:
    return Decimal(0)


def _feature_key(rules: SpendRules, measure: FeatureMeasure) -> str:
    return next(key for key, found in rules.measures.items() if found is measure)


def _filters(feature: PricedFeature) -> dict[str, tuple[str, ...]]:
    return {name: tuple(sorted(values)) for name, values in feature.measure.filters.items()}


def _linear_cost(priced: Sequence[PricedFeature]) -> LinearCost | None:
    """`_plan_cost` of plain unit prices on token counts, compiled (`LinearCost`); None where a priced feature's
    measure is more than token counts."""
    terms: list[tuple[Decimal, tuple[str, ...]]] = []
    for feature in priced:
        types = feature.measure.token_types()
        if types is None or feature.unit is None:
            return None
        terms.append((feature.unit, types))
    return LinearCost(tuple(terms))


class LinearCost:
    """A call's cost under plain unit prices on token counts: the sum of each price times the call's integer count
    of its token types (a Decimal times an int: exact, the same value as through the measures). `per_input` and
    `per_output`: what one input and one output token cost (a worst case counts only those two types)."""

    __slots__ = ("per_input", "per_output", "terms")

    def __init__(self, terms: tuple[tuple[Decimal, tuple[str, ...]], ...]) -> None:
        self.terms = terms
        self.per_input = sum((unit for unit, types in terms if "input" in types), _ZERO)
        self.per_output = sum((unit for unit, types in terms if "output" in types), _ZERO)

    def __call__(self, call: LlmCall) -> Decimal:
        usage = call.usage
        total = _ZERO
        if usage is None:
            return total
        for unit, types in self.terms:
            count = 0
            for kind in types:
                count += getattr(usage, kind)
            if count > 0:
                total += unit * count
        return total


def _plan_cost(priced: Sequence[PricedFeature], period_usage: dict[str, Decimal]) -> Amount:
    def cost(call: LlmCall) -> Decimal:
        total = _ZERO
        for feature in priced:
            delta = feature.measure.amount(call)
            if delta:
                if feature.unit is not None:
                    total += delta * feature.unit if delta > 0 else _ZERO
                else:
                    total += marginal_cost(period_usage.get(feature.key, _ZERO), delta, feature.terms)
        return total

    return cost
