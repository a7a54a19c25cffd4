"""Admission: before a call, hold its worst case against every hard limit that governs it; after, settle.

    admit(call)  -> the limits that govern the subject at this moment (from the rules snapshot, memory)
                 -> the worst case of each (the measure of the worst-case call's events)
                 -> one atomic reserve over all of them (seeding unseeded counters from metered usage)
                 -> a Hold, or a refusal naming the limit, its window and when it resets
    Hold.settle(record) -> each counter: the hold becomes the call's metered amount
    Hold.release()      -> the hold is dropped (after a settle: nothing left to do); exactly once

A counter is never incremented from a guess of another process: it starts from the metered usage of
its window (set-if-absent) and grows only by this deployment's settled calls; a reconciler raises it
to the metered usage when the event store has seen more (usage from elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Literal

from tollway.billing.subscriptions import Subscription
from tollway.clock import Clock
from tollway.errors import ForbiddenError, LimitExceededError, UnavailableError
from tollway.metering.llm import LlmCall
from tollway.money import decimal_text
from tollway.spend.budget_usage import budget_limit
from tollway.spend.budgets import Budget, BudgetStatus
from tollway.spend.compiled import Shape
from tollway.spend.hold import Degradable, HeldRate, Hold, prepaid_governed, refusal
from tollway.spend.limits import Governed, LimitsBuilder, worst
from tollway.spend.plan import Plan, Plans, Pricing
from tollway.spend.ports import Counter, CounterStore, CountersUnavailable, Reserved
from tollway.spend.rate_limits import WEIGHT_SCALE
from tollway.spend.rates import rate_governed
from tollway.spend.rules import CustomerRules, SpendRules
from tollway.spend.selection import Selections
from tollway.spend.usage import UsageReader

NoSubscription = Literal["allow", "refuse"]
log = logging.getLogger("tollway.spend")
SEED_ATTEMPTS = 3
_ZERO = Decimal(0)


# built per call, never changed after: not frozen (a frozen __init__ costs a setattr per field)
@dataclass(slots=True, unsafe_hash=True)
class SpendCall:
    """A call about to run: who, and its worst case on each target it may reach (measured the way the
    real call's usage will be)."""

    request_id: str
    subject: str
    worst_cases: tuple[LlmCall, ...]
    request_budget: Decimal | None = None  # x-tollway-budget: the most this one call may cost
    task: str | None = None  # x-tollway-task: the agent task the call belongs to
    task_budget: Decimal | None = None  # x-tollway-task-budget: the most the task's calls may cost together
    key_id: str | None = None  # the API key's id (a key managed through the API): key budgets and rate limits
    model: str | None = None  # the model's name as clients use it: rate limits on a model


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One hard limit, as a cost estimate sees it: would the call's worst case fit now?"""

    name: str
    limit: Decimal
    used: Decimal
    reserved: Decimal
    needed: Decimal
    resets_at: datetime | None
    fits: bool


@dataclass(frozen=True, slots=True)
class Estimate:
    cost: tuple[Decimal, Decimal]  # least (no output) and most (the worst case), in `currency`
    currency: str
    provider_cost: tuple[Decimal, Decimal]  # USD
    allowed: bool
    refusal: str | None
    limits: tuple[LimitCheck, ...]


class SpendAdmission:
    def __init__(
        self,
        counters: CounterStore,
        usage: UsageReader,
        clock: Clock,
        rules: Callable[[], SpendRules],
        *,
        no_subscription: NoSubscription = "allow",
        on_unavailable: Literal["open", "closed"] = "closed",
    ) -> None:
        self._counters = counters
        self._usage = usage
        self._clock = clock
        self._rules = rules
        self._no_subscription = no_subscription
        self._on_unavailable = on_unavailable
        self.unavailable_admits = 0  # calls let through unchecked (fail-open) since start
        self._limits = LimitsBuilder(usage)
        self._selections = Selections()  # the budgets and rate limits of each caller, per rules snapshot
        self._plans = Plans(self._limits, self._selections)  # what admits each caller's calls, worked out once
        # the period usage of each priced feature as this process last saw it (usage counter key -> amount):
        # a call is priced at it; every reserve's answer brings it up to date
        self._period_usage: dict[str, Decimal] = {}
        self._seeding: dict[str, asyncio.Future[None]] = {}
        # every counter this process seeded: what the reconciler reads it again from
        self.seeded: dict[str, Governed] = {}

    def priced_or_limited(self, subject: str, key_id: str | None = None, model: str | None = None) -> bool:
        """Whether the subject's calls now need their worst case: an active subscription (its calls are priced
        on the plan), a budget, a rate limit, or the setting that refuses calls without a subscription."""
        return self.plan(subject, key_id, model, self._clock.now()).needs_worst

    def plan(self, subject: str, key_id: str | None, model: str | None, now: datetime) -> Plan:
        """What admits the caller's calls at `now` (`plan.needs_worst`: whether they need their worst case)."""
        refuse = self._no_subscription == "refuse"
        return self._plans.of(self._rules(), subject, key_id, model, now, refuse_unsubscribed=refuse)

    def governs(self, subject: str) -> bool:
        """Whether any limit may apply to the subject's calls (False: admit without looking further)."""
        rules = self._rules()
        return (
            subject in rules.by_subject
            or subject in rules.consumer_budgets
            or bool(rules.key_budgets)
            or bool(rules.rate_limits)
            or self._no_subscription == "refuse"
        )

    async def admit(
        self, call: SpendCall, *, degrade: bool = True, plan: Plan | None = None, now: datetime | None = None
    ) -> Hold | None:
        """A hold for the call, None when no limit governs it, or a refusal (LimitExceededError, ForbiddenError);
        with `degrade`, Degradable where the limit that refuses it is a budget that degrades calls instead.
        `plan`, `now`: the caller's plan at the moment `now`, when the caller just looked it up (`plan`)."""
        rules = self._rules()
        if now is None:
            now = self._clock.now()
        if plan is None or plan.rules is not rules:
            plan = self.plan(call.subject, call.key_id, call.model, now)
        if plan.unsubscribed is not None:
            raise ForbiddenError(
                f"{plan.unsubscribed} has no active subscription, and this gateway refuses calls without one.",
                code="no_subscription",
            )
        governed: list[Governed] = []
        try:
            if plan.static and call.request_budget is None and call.task_budget is None:
                governed, pricing = plan.govern(call.worst_cases, now), plan.pricing  # the caller's plan holds
                if not governed and plan.priced and pricing is not None:  # nothing to hold: priced on the plan
                    return Hold(self._counters, (), (), cost_of=pricing[0], currency=pricing[1], at=now)
            else:
                governed, pricing = await self._governed(rules, call, plan.customer, plan.subscription, now)
            if not governed:
                return None
            return await self._reserve(governed, now, pricing, degrade=degrade)
        except CountersUnavailable as exc:
            self._unchecked(governed, exc)
            return None

    async def admit_compiled(self, plan: Plan, shape: Shape, now: datetime) -> Hold | Literal[False] | None:
        """A call of a compiled plan (`plan.compiled`, no x-tollway-budget or task budget) whose worst case has
        `shape`: a hold, None when no limit governs it, or False where the general way (`admit` with the worst-case
        calls) must decide: a counter to seed first, or a limit that refuses the call (nothing is held then)."""
        compiled = plan.compiled
        assert compiled is not None
        assert plan.pricing is not None
        asks, slides = compiled.asks(shape, now)
        # what goes with these asks, taken before the await (a call of another shape may compile meanwhile)
        measures, picks, budgets, templates = compiled.along
        cost_of, currency = plan.pricing
        if not asks:
            return Hold(self._counters, (), (), cost_of=cost_of, currency=currency, at=now) if plan.priced else None
        counters = self._counters
        try:
            result = counters.reserve_now(asks)  # in memory: no coroutine to await
            if result is None:
                result = await counters.reserve(asks)
        except CountersUnavailable as exc:
            self._unchecked(templates, exc)
            return None
        if not result.held:
            return False
        return Hold(
            self._counters,
            asks,
            measures,
            cost_of=cost_of,
            currency=currency,
            before=result.counters,
            budgets=budgets,
            rates=slides,
            at=now,
            picks=picks,
        )

    def _unchecked(self, governed: Sequence[Governed], exc: CountersUnavailable) -> None:
        """The counters did not answer: the call is let through unchecked (fail-open: returns), or refused."""
        if self.fails_open(governed):
            self.unavailable_admits += 1
            log.warning("spend limits not checked (fail-open): %s", exc.message)
            return
        raise UnavailableError(
            "Spend limits cannot be checked right now (the counter store did not answer in time), so the "
            "request was refused; try again shortly.",
            code="limits_unavailable",
        ) from exc

    def fails_open(self, governed: Sequence[Governed]) -> bool:
        """Whether a call these limits govern is admitted unchecked when the counters do not answer: only if every
        limit's `on_redis_failure` (a budget's, a rate limit's; the process default for the others: entitlements,
        task budgets) is open. A plan's usage counter only prices the call: it has no say."""
        default = self._on_unavailable
        said = False
        for g in governed:
            rule = g.budget or g.rate
            if rule is None and g.name[:6] == "usage:":
                continue
            said = True
            chosen = rule.on_redis_failure if rule is not None else None
            if (chosen or default) == "closed":
                return False
        return said or default == "open"

    async def _governed(
        self,
        rules: SpendRules,
        call: SpendCall,
        customer: CustomerRules | None,
        subscription: Subscription | None,
        now: datetime,
    ) -> tuple[list[Governed], Pricing | None]:
        """The limits in force on the call, and how its cost is priced (when a money limit needs it)."""
        selected = self._selections.of(rules, call.subject, call.key_id, call.model)
        budgets = selected.budgets
        limited = subscription is not None and rules.plan_limits(subscription.plan_id)
        priced_by_call = call.request_budget is not None or call.task_budget is not None
        # a subscribed customer's calls are priced as its plan prices them (x-tollway-cost, money limits)
        priced = self._limits.priced_features(rules, subscription, now) if subscription is not None else []
        rates = selected.rates
        if not budgets and not limited and not priced_by_call and not priced and not rates:
            return [], None
        events = call.worst_cases
        governed: list[Governed] = []
        if limited and customer is not None and subscription is not None:
            governed.extend(self._limits.entitlements(rules, customer, subscription, events, now))
        if rules.tokens is None or rules.provider_cost is None:
            return governed, None
        customer_subjects = customer.customer.subjects if customer is not None else (call.subject,)
        period_usage: dict[str, Decimal] = {}
        if priced:
            usage = self._limits.usage_asks(priced, customer_subjects, events)
            unseen = [g for g in usage if g.ask.key not in self._period_usage]
            if unseen:  # first call of the period in this process: one read (the reserve's answers keep it after)
                await self._ensure_seeded(unseen, now)
                for g, counter in zip(unseen, await self._counters.read([g.ask.key for g in unseen]), strict=True):
                    self._period_usage[g.ask.key] = (
                        counter.used + counter.reserved if counter is not None else Decimal(0)
                    )
            for g in usage:
                period_usage[g.name.removeprefix("usage:")] = self._period_usage.get(g.ask.key, Decimal(0))
            governed.extend(usage)
        cost_of = self._limits.cost_of(subscription is not None, priced, period_usage, rules.provider_cost)
        pricing = (cost_of, rules.plans[subscription.plan_id].currency if subscription is not None else "USD")
        if call.request_budget is not None:
            worst_cost = worst(cost_of, events)
            if worst_cost > call.request_budget:
                raise LimitExceededError(
                    "Limit reached: this request's budget (x-tollway-budget) allows "
                    f"{decimal_text(call.request_budget)}, and the request may cost up to {decimal_text(worst_cost)}.",
                    code="insufficient_quota",
                    limit="request",
                )
        if call.task is not None and call.task_budget is not None:
            governed.append(self._limits.task(call.subject, call.task, call.task_budget, cost_of, events, now))
        for rate, entity, who in rates:
            found = rate_governed(rate, entity, who, cost_of, events, now)
            if found is not None:
                governed.append(found)
        for budget in budgets:
            mine = customer_subjects if budget.scope == "customer" else (call.subject,)
            who = f"API key '{budget.target}'" if budget.scope == "key" else f"{budget.scope} '{budget.target}'"
            governed.append(
                prepaid_governed(
                    budget,
                    self._limits.budget(
                        budget,
                        mine,
                        who,
                        subscription,
                        customer_subjects,
                        priced,
                        period_usage,
                        rules.tokens,
                        rules.provider_cost,
                        events,
                        now,
                    ),
                )
            )
        return governed, pricing

    async def estimate(self, call: SpendCall, least: Sequence[LlmCall]) -> Estimate:
        """What the call would cost (`least`: the call without output, its worst case: `call.worst_cases`) and
        whether every limit would let it through right now. Nothing is held or counted."""
        rules, now = self._rules(), self._clock.now()
        customer = rules.by_subject.get(call.subject)
        subscription = rules.subscription_at(customer, now) if customer is not None else None
        refusal_text: str | None = None
        checks: list[LimitCheck] = []
        pricing: Pricing | None = None
        try:
            if (customer is None or subscription is None) and self._no_subscription == "refuse":
                raise ForbiddenError("no active subscription, and this gateway refuses calls without one")
            governed, pricing = await self._governed(rules, call, customer, subscription, now)
            await self._ensure_seeded(governed, now)
            counters = await self._counters.read([g.ask.key for g in governed])
            previous = await self._counters.read([g.ask.previous or g.ask.key for g in governed])
            counters = [
                replace(c, previous=p.used + p.reserved) if c is not None and p is not None and g.slide else c
                for g, c, p in zip(governed, counters, previous, strict=True)
            ]
        except (ForbiddenError, LimitExceededError) as exc:
            refusal_text, governed, counters = exc.message, [], []
        for g, counter in zip(governed, counters, strict=True):
            if g.ask.limit is None:
                continue
            counter = counter or Counter(Decimal(0), Decimal(0))
            used, held = counter.used, counter.reserved
            if g.slide is not None:
                used += counter.previous * g.slide.weight / WEIGHT_SCALE
            fits = used + held + g.ask.amount <= g.ask.limit
            checks.append(LimitCheck(g.name, g.ask.limit, used, held, g.ask.amount, g.window.end, fits))
            if not fits and refusal_text is None:
                refusal_text = refusal(g, counter, now).message
        if pricing is None:
            if rules.provider_cost is None:
                raise UnavailableError("the built-in meters are not loaded yet")
            pricing = (rules.provider_cost.amount, "USD")
        cost_of, currency = pricing
        cheapest = min((cost_of(c) for c in least), default=Decimal(0))
        dearest = max((cost_of(c) for c in call.worst_cases), default=Decimal(0))
        provider = rules.provider_cost.amount if rules.provider_cost is not None else cost_of
        provider_least = min((provider(c) for c in least), default=Decimal(0))
        provider_most = max((provider(c) for c in call.worst_cases), default=Decimal(0))
        return Estimate(
            cost=(cheapest, dearest),
            currency=currency,
            provider_cost=(provider_least, provider_most),
            allowed=refusal_text is None,
            refusal=refusal_text,
            limits=tuple(checks),
        )

    async def budget_status(self, budget: Budget) -> BudgetStatus:
        """What the budget's current window holds now: used (seeded from the metered usage if this process
        has not counted it yet), held by calls in flight, remaining, and when it resets."""
        rules, now = self._rules(), self._clock.now()
        governed, currency = budget_limit(self._limits, rules, budget, now)
        await self._ensure_seeded([governed], now)
        [counter] = await self._counters.read([governed.ask.key])
        used = counter.used if counter is not None else Decimal(0)
        reserved = counter.reserved if counter is not None else Decimal(0)
        return BudgetStatus(
            used=used,
            reserved=reserved,
            remaining=max(budget.limit - used - reserved, Decimal(0)),
            window_start=governed.window.start,
            resets_at=governed.window.end,
            currency=currency if budget.kind == "money" else None,
        )

    async def _ensure_seeded(self, governed: Sequence[Governed], now: datetime) -> None:
        governed = [g for g in governed if g.ask.fresh_ttl_s is None]  # rate counters start at 0
        found = await self._counters.read([g.ask.key for g in governed])
        await asyncio.gather(
            *(self._seed(g, now) for g, counter in zip(governed, found, strict=True) if counter is None)
        )

    async def _reserve(
        self, governed: Sequence[Governed], now: datetime, pricing: Pricing | None = None, *, degrade: bool = False
    ) -> Hold:
        asks = tuple([g.ask for g in governed])
        result: Reserved | None = None
        for _ in range(SEED_ATTEMPTS):
            result = await self._counters.reserve(asks)
            if not result.missing:
                break
            by_key = {g.ask.key: g for g in governed}
            await asyncio.gather(*(self._seed(by_key[key], now) for key in result.missing))
        assert result is not None
        counters = result.counters
        budgets: list[tuple[int, str]] = []
        rates: list[HeldRate] = []
        for index, g in enumerate(governed):
            name = g.name
            if name[:6] == "usage:":
                if index < len(counters):
                    counter = counters[index]
                    held = g.ask.amount if result.held else _ZERO
                    self._period_usage[g.ask.key] = counter.used + counter.reserved + held
            elif name[:7] == "budget:" or name[:5] == "task:":
                budgets.append((index, name.removeprefix("budget:")))
            elif g.slide is not None and g.rate is not None:
                rates.append((index, g.rate, g.slide, None))
        if result.held:
            cost_of, currency = pricing if pricing is not None else (None, "USD")
            return Hold(
                self._counters,
                asks,
                tuple([g.amount_of for g in governed]),
                cost_of=cost_of,
                currency=currency,
                before=counters,
                budgets=tuple(budgets),
                rates=tuple(rates),
                at=now,
            )
        if result.refused is None:  # still unseeded: a store that keeps dropping keys
            raise LimitExceededError(
                "Spend counters are unavailable; the request was not admitted.", code="limits_unavailable"
            )
        refused = governed[result.refused]
        counter = result.counters[result.refused]
        error = refusal(refused, counter, now)
        budget = refused.budget
        if degrade and budget is not None and budget.on_exceeded == "degrade" and refused.ask.limit is not None:
            room = refused.ask.limit - counter.used - counter.reserved
            raise Degradable(error, budget, room, refused.amount_of)
        raise error

    async def _seed(self, governed: Governed, now: datetime) -> None:
        """Seed one counter from the metered usage of its window, once however many calls ask at once."""
        key = governed.ask.key
        pending = self._seeding.get(key)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seeding[key] = future
        try:
            used = await governed.metered(now)
            await self._counters.seed(key, used, governed.ask.expires_at)
            self.seeded[key] = governed
            future.set_result(None)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._seeding[key]

    async def reconcile(self) -> int:
        """Raise each seeded counter of a window still open to its metered usage; forget closed windows.
        Returns how many counters were read."""
        now = self._clock.now()
        read = 0
        for key, governed in list(self.seeded.items()):
            end = governed.window.end
            if end is not None and end <= now:
                del self.seeded[key]
                continue
            await self._counters.raise_used(key, await governed.metered(now))
            read += 1
        return read
