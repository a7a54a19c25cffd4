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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from tollway.billing.entitlements import FeatureAccess, feature_access
from tollway.clock import Clock
from tollway.errors import ForbiddenError, LimitExceededError
from tollway.metering.events import Event
from tollway.metering.llm import LlmCall, llm_call_events
from tollway.money import decimal_text
from tollway.spend.measure import FeatureMeasure
from tollway.spend.ports import Ask, CounterStore, Reserved
from tollway.spend.rules import KEEP_AFTER_WINDOW, CustomerRules, Entitled, SpendRules
from tollway.spend.usage import UsageReader
from tollway.spend.windows import Window

NoSubscription = Literal["allow", "refuse"]
SEED_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class SpendCall:
    """A call about to run: who, and its worst case on each target it may reach (measured the way the
    real call's usage will be)."""

    request_id: str
    subject: str
    worst_cases: tuple[LlmCall, ...]


@dataclass(frozen=True, slots=True)
class Governed:
    """A hard limit on one call: its counter ask, how the call's usage counts on it, how to seed it."""

    ask: Ask
    measure: FeatureMeasure
    entitled: Entitled
    customer: CustomerRules


class Hold:
    """What an admitted call holds; settled to the call's usage, or released, exactly once."""

    __slots__ = ("_asks", "_done", "_measures", "_store")

    def __init__(self, store: CounterStore, asks: tuple[Ask, ...], measures: tuple[FeatureMeasure, ...]) -> None:
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
        self._store.settle(self._asks, [measure.amount(events) for measure in self._measures])

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
    ) -> None:
        self._counters = counters
        self._usage = usage
        self._clock = clock
        self._rules = rules
        self._no_subscription = no_subscription
        self._seeding: dict[str, asyncio.Future[None]] = {}
        # every counter this process seeded: what the reconciler reads it again from
        self.seeded: dict[str, Governed] = {}

    def governs(self, subject: str) -> bool:
        """Whether any limit may apply to the subject's calls (False: admit without looking further)."""
        rules = self._rules()
        return subject in rules.by_subject or self._no_subscription == "refuse"

    async def admit(self, call: SpendCall) -> Hold | None:
        rules = self._rules()
        now = self._clock.now()
        customer = rules.by_subject.get(call.subject)
        subscription = rules.subscription_at(customer, now) if customer is not None else None
        if customer is None or subscription is None:
            if self._no_subscription == "refuse":
                who = f"customer '{customer.customer.key}'" if customer is not None else f"subject '{call.subject}'"
                raise ForbiddenError(
                    f"{who} has no active subscription, and this gateway refuses calls without one.",
                    code="no_subscription",
                )
            return None
        entitled = rules.entitlements_at(subscription, now)
        priced = rules.priced_at(subscription, now)

        def refused(key: str) -> bool:  # the plan has no entitlement for the feature: the one access rule decides
            access = feature_access(
                subscribed=True, entitlement=None, priced=key in priced, has_meter=True, gated=key in rules.gated
            )
            return access is FeatureAccess.NONE

        relevant = [
            (key, measure)
            for key, measure in rules.measures.items()
            if (key in entitled and _hard(entitled[key])) or (key not in entitled and refused(key))
        ]
        if not relevant:
            return None
        events = [llm_call_events(worst) for worst in call.worst_cases]
        governed: list[Governed] = []
        for key, measure in relevant:
            amount = _worst(measure, events)
            if amount <= 0:
                continue
            entitlement = entitled.get(key)
            if entitlement is None:
                if refused(key):
                    raise ForbiddenError(
                        f"The plan of customer '{customer.customer.key}' does not include the feature '{key}' "
                        "this request would use.",
                        code="feature_not_entitled",
                    )
                continue
            window = entitlement.window
            ask = Ask(
                key=f"ent:{subscription.id}:{key}:{window.tag}",
                amount=amount,
                limit=entitlement.template.limit or Decimal(0),
                expires_at=None if window.end is None else window.end + KEEP_AFTER_WINDOW,
            )
            governed.append(Governed(ask, measure, entitlement, customer))
        if not governed:
            return None
        return await self._reserve(governed, now)

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
            return Hold(self._counters, asks, tuple(g.measure for g in governed))
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
            used = await self.metered(governed, now)
            await self._counters.seed(key, used, governed.ask.expires_at)
            self.seeded[key] = governed
            future.set_result(None)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._seeding[key]

    async def metered(self, governed: Governed, at: datetime) -> Decimal:
        entitled = governed.entitled
        return await self._usage.usage(
            governed.measure.meter,
            governed.customer.customer.subjects,
            entitled.feature.filters,
            entitled.counted_from,
            at,
        )

    async def reconcile(self) -> int:
        """Raise each seeded counter of a window still open to its metered usage; forget closed windows.
        Returns how many counters were read."""
        now = self._clock.now()
        read = 0
        for key, governed in list(self.seeded.items()):
            end = governed.entitled.window.end
            if end is not None and end <= now:
                del self.seeded[key]
                continue
            await self._counters.raise_used(key, await self.metered(governed, now))
            read += 1
        return read


def _hard(entitled: Entitled) -> bool:
    return entitled.template.type == "metered" and entitled.template.hard


def _worst(measure: FeatureMeasure, events: Sequence[Sequence[Event]]) -> Decimal:
    return max((measure.amount(batch) for batch in events), default=Decimal(0))


def refusal(governed: Governed, used: Decimal, reserved: Decimal, now: datetime) -> LimitExceededError:
    entitled = governed.entitled
    window: Window = entitled.window
    limit = governed.ask.limit or Decimal(0)
    resets = "never" if window.end is None else _time(window.end)
    held = f", {decimal_text(reserved)} held by calls in flight" if reserved else ""
    message = (
        f"Limit reached: the '{entitled.feature.key}' entitlement of customer '{governed.customer.customer.key}' "
        f"allows {decimal_text(limit)} per usage period ({_time(entitled.counted_from)} to {resets}); "
        f"{decimal_text(used)} used{held}, and this request may use up to {decimal_text(governed.ask.amount)}. "
        f"It resets at {resets}."
    )
    return LimitExceededError(
        message,
        code="insufficient_quota",
        retry_after_s=window.seconds_left(now) or None,
        limit=f"entitlement:{entitled.feature.key}",
        resets_at=window.end,
    )


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
