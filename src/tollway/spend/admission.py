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
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from tollway.billing.subscriptions import Subscription
from tollway.clock import Clock
from tollway.errors import ForbiddenError, LimitExceededError, UnavailableError
from tollway.metering.events import Event
from tollway.metering.llm import LlmCall, llm_call_events
from tollway.money import decimal_text
from tollway.spend.budgets import Budget, BudgetStatus
from tollway.spend.limits import Governed, LimitsBuilder, PricedFeature
from tollway.spend.ports import Ask, CounterStore, CountersUnavailable, Reserved
from tollway.spend.rules import CustomerRules, SpendRules
from tollway.spend.usage import UsageReader

NoSubscription = Literal["allow", "refuse"]
log = logging.getLogger("tollway.spend")
SEED_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class SpendCall:
    """A call about to run: who, and its worst case on each target it may reach (measured the way the
    real call's usage will be)."""

    request_id: str
    subject: str
    worst_cases: tuple[LlmCall, ...]


class Hold:
    """What an admitted call holds; settled to the call's usage, or released, exactly once."""

    __slots__ = ("_asks", "_done", "_measures", "_store")

    def __init__(
        self, store: CounterStore, asks: tuple[Ask, ...], measures: tuple[Callable[[Sequence[Event]], Decimal], ...]
    ) -> None:
        self._store = store
        self._asks = asks
        self._measures = measures
        self._done = False

    @property
    def asks(self) -> tuple[Ask, ...]:
        return self._asks

    def settle(self, record: LlmCall) -> None:
        if self._done:
            return
        self._done = True
        events = llm_call_events(record)
        self._store.settle(self._asks, [amount_of(events) for amount_of in self._measures])

    def release(self) -> None:
        if self._done:
            return
        self._done = True
        self._store.release(self._asks)


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
        self._seeding: dict[str, asyncio.Future[None]] = {}
        # every counter this process seeded: what the reconciler reads it again from
        self.seeded: dict[str, Governed] = {}

    def governs(self, subject: str) -> bool:
        """Whether any limit may apply to the subject's calls (False: admit without looking further)."""
        rules = self._rules()
        return subject in rules.by_subject or subject in rules.consumer_budgets or self._no_subscription == "refuse"

    async def admit(self, call: SpendCall) -> Hold | None:
        rules = self._rules()
        now = self._clock.now()
        customer = rules.by_subject.get(call.subject)
        subscription = rules.subscription_at(customer, now) if customer is not None else None
        if (customer is None or subscription is None) and self._no_subscription == "refuse":
            who = f"customer '{customer.customer.key}'" if customer is not None else f"subject '{call.subject}'"
            raise ForbiddenError(
                f"{who} has no active subscription, and this gateway refuses calls without one.",
                code="no_subscription",
            )
        try:
            governed = await self._governed(rules, call, customer, subscription, now)
            if not governed:
                return None
            return await self._reserve(governed, now)
        except CountersUnavailable as exc:
            if self._on_unavailable == "open":
                self.unavailable_admits += 1
                log.warning("spend limits not checked (fail-open): %s", exc.message)
                return None
            raise UnavailableError(
                "Spend limits cannot be checked right now (the counter store did not answer in time), so the "
                "request was refused; try again shortly.",
                code="limits_unavailable",
            ) from exc

    async def _governed(
        self,
        rules: SpendRules,
        call: SpendCall,
        customer: CustomerRules | None,
        subscription: Subscription | None,
        now: datetime,
    ) -> list[Governed]:
        budgets = rules.consumer_budgets.get(call.subject, ())
        if customer is not None:
            budgets = rules.customer_budgets.get(customer.customer.key, ()) + budgets
        limited = subscription is not None and rules.plan_limits(subscription.plan_id)
        if not budgets and not limited:
            return []
        events = [llm_call_events(worst) for worst in call.worst_cases]
        governed: list[Governed] = []
        if limited and customer is not None and subscription is not None:
            governed.extend(self._limits.entitlements(rules, customer, subscription, events, now))
        if not budgets or rules.tokens is None or rules.provider_cost is None:
            return governed
        customer_subjects = customer.customer.subjects if customer is not None else (call.subject,)
        priced: list[PricedFeature] = []
        period_usage: dict[str, Decimal] = {}
        if subscription is not None and any(budget.kind == "money" for budget in budgets):
            priced = self._limits.priced_features(rules, subscription, now)
            usage = self._limits.usage_asks(priced, customer_subjects, events)
            await self._ensure_seeded(usage, now)
            found = await self._counters.read([g.ask.key for g in usage])
            for feature, counter in zip(priced, found, strict=True):
                period_usage[feature.key] = counter.used + counter.reserved if counter is not None else Decimal(0)
            governed.extend(usage)
        for budget in budgets:
            mine = customer_subjects if budget.scope == "customer" else (call.subject,)
            who = f"{budget.scope} '{budget.target}'"
            governed.append(
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
                )
            )
        return governed

    async def budget_status(self, budget: Budget) -> BudgetStatus:
        """What the budget's current window holds now: used (seeded from the metered usage if this process
        has not counted it yet), held by calls in flight, remaining, and when it resets."""
        rules, now = self._rules(), self._clock.now()
        if budget.scope == "customer":
            customer = next((c for c in rules.by_subject.values() if c.customer.key == budget.target), None)
            subjects: tuple[str, ...] = customer.customer.subjects if customer is not None else ()
        else:
            customer = rules.by_subject.get(budget.target)
            subjects = (budget.target,)
        subscription = rules.subscription_at(customer, now) if customer is not None else None
        customer_subjects = customer.customer.subjects if customer is not None else subjects
        priced: list[PricedFeature] = []
        currency = "USD"
        if subscription is not None:
            currency = rules.plans[subscription.plan_id].currency
            if budget.kind == "money":
                priced = self._limits.priced_features(rules, subscription, now)
        if rules.tokens is None or rules.provider_cost is None:
            raise UnavailableError("the built-in meters are not loaded yet")
        governed = self._limits.budget(
            budget,
            subjects,
            "",
            subscription,
            customer_subjects,
            priced,
            {},
            rules.tokens,
            rules.provider_cost,
            [],
            now,
        )
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
        found = await self._counters.read([g.ask.key for g in governed])
        await asyncio.gather(
            *(self._seed(g, now) for g, counter in zip(governed, found, strict=True) if counter is None)
        )

    async def _reserve(self, governed: Sequence[Governed], now: datetime) -> Hold:
        asks = tuple(g.ask for g in governed)
        result: Reserved | None = None
        for _ in range(SEED_ATTEMPTS):
            result = await self._counters.reserve(asks)
            if not result.missing:
                break
            by_key = {g.ask.key: g for g in governed}
            await asyncio.gather(*(self._seed(by_key[key], now) for key in result.missing))
        assert result is not None
        if result.held:
            return Hold(self._counters, asks, tuple(g.amount_of for g in governed))
        if result.refused is None:  # still unseeded: a store that keeps dropping keys
            raise LimitExceededError(
                "Spend counters are unavailable; the request was not admitted.", code="limits_unavailable"
            )
        refused = governed[result.refused]
        counter = result.counters[result.refused]
        raise refusal(refused, counter.used, counter.reserved, now)

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


def refusal(governed: Governed, used: Decimal, reserved: Decimal, now: datetime) -> LimitExceededError:
    window = governed.window
    limit = governed.ask.limit or Decimal(0)
    resets = "never" if window.end is None else _time(window.end)
    held = f", {decimal_text(reserved)} held by calls in flight" if reserved else ""
    message = (
        f"Limit reached: {governed.what} allows {decimal_text(limit)} {governed.per} "
        f"({_time(governed.counted_from)} to {resets}); {decimal_text(used)} used{held}, and this request may "
        f"use up to {decimal_text(governed.ask.amount)}. It resets at {resets}."
    )
    return LimitExceededError(
        message,
        code="insufficient_quota",
        retry_after_s=window.seconds_left(now) or None,
        limit=governed.name,
        resets_at=window.end,
    )


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
