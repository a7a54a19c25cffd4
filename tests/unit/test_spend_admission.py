"""Spend admission on the memory stores: entitlements held before a call, settled to its usage, released once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.counters import MemoryCounterStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.adapters.memory.unit_grants import MemoryUnitGrantStore
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import Tier, TieredPrice, UnitPrice, UsageTerms
from tollway.clock import FrozenClock
from tollway.errors import ForbiddenError, LimitExceededError
from tollway.metering.llm import LlmCall, TokenUsage, llm_call_events
from tollway.metering.meters import Meter
from tollway.metering.running_totals import Filters, RunningTotals
from tollway.metering.service import MeteringService
from tollway.spend.admission import SpendAdmission, SpendCall
from tollway.spend.hold import Hold
from tollway.spend.keeper import RulesKeeper
from tollway.spend.usage import MeteredUsage
from tollway.wiring.catalog import build_catalog

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class CountingUsage(MeteredUsage):
    reads = 0

    async def usage(
        self, meter: Meter, subjects: Sequence[str], filters: Filters, start: datetime, at: datetime
    ) -> Decimal:
        self.reads += 1
        await asyncio.sleep(0)  # a real read yields: concurrent admissions must share it
        return await super().usage(meter, subjects, filters, start, at)


class World:
    def __init__(self) -> None:
        self.clock = FrozenClock(NOW)
        self.events = MemoryEventStore(self.clock)
        self.store = MemoryCatalogStore()
        self.metering = MeteringService(self.events, self.clock)
        self.unit_grants = MemoryUnitGrantStore()  # empty unless a test grants (test_unit_grant_admission)
        self.catalog = build_catalog(self.store, self.metering, self.clock, unit_grants=self.unit_grants)
        self.keeper = RulesKeeper(self.store, self.metering)
        self.counters = MemoryCounterStore(self.clock)
        self.usage = CountingUsage(self.metering, RunningTotals(self.events, self.clock))
        self.admission = SpendAdmission(self.counters, self.usage, self.clock, self.keeper.current)
        self.serial = 0

    def call(self, subject: str = "acme-corp", output: int = 30, input_: int = 5, ago: int = 0) -> LlmCall:
        self.serial += 1
        return LlmCall(
            request_id=f"r{self.serial}",
            subject=subject,
            time=self.clock.now() - timedelta(minutes=ago),
            model="demo",
            upstream_model="demo",
            provider="local",
            route="/v1/chat/completions",
            status_code=200,
            streamed=False,
            usage=TokenUsage(input=input_, output=output),
        )

    async def admit(self, subject: str = "acme-corp", output: int = 30) -> Hold | None:
        worst = self.call(subject, output)
        return await self.admission.admit(SpendCall(worst.request_id, subject, (worst,)))

    async def counter(self, hold: Hold) -> tuple[Decimal, Decimal]:
        [found] = await self.counters.read([hold.asks[0].key])
        assert found is not None
        return found.used, found.reserved


def card(feature: str, entitlement: EntitlementTemplate | None = None) -> RateCard:
    return RateCard(
        key=feature,
        name=feature,
        feature_key=feature,
        usage=UsageTerms(price=UnitPrice(Decimal("0.00001"))),
        entitlement=entitlement,
    )


async def world_with(*cards: RateCard, used: int = 40, subscribe: bool = True) -> World:
    w = World()
    await w.metering.sync_meters([])  # the built-in meters
    await w.catalog.features.create_feature(key="output-tokens", meter_slug="llm_tokens", filters={"type": ["output"]})
    await w.catalog.features.create_feature(key="input-tokens", meter_slug="llm_tokens", filters={"type": ["input"]})
    plan = await w.catalog.plans.create_plan(
        key="pro", name="Pro", currency="USD", billing_cadence="P1M", phases=(Phase("default", "Default", cards),)
    )
    await w.catalog.plans.publish_plan(plan.id)
    await w.catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-corp"])
    if subscribe:
        await w.catalog.subscriptions.create_subscription(
            customer="acme",
            plan_key="pro",
            active_from=datetime(2026, 11, 1, tzinfo=UTC),
            billing_anchor=datetime(2026, 11, 1, tzinfo=UTC),
        )
    if used:
        await w.events.insert_events(llm_call_events(w.call(output=used, ago=60)))
    await w.keeper.refresh()
    return w


HARD_100 = EntitlementTemplate("metered", limit=Decimal(100), hard=True)


async def test_holds_until_the_limit_and_names_it_when_refusing() -> None:
    w = await world_with(card("output-tokens", HARD_100))
    first, second = await w.admit(), await w.admit()  # 40 used + 30 + 30 held = 100: fits exactly
    assert first is not None
    assert second is not None
    assert await w.counter(first) == (Decimal(40), Decimal(60))
    with pytest.raises(LimitExceededError) as refused:
        await w.admit()
    error = refused.value
    assert error.message == (
        "Limit reached: the 'output-tokens' entitlement of customer 'acme' allows 100 per usage period "
        "(2026-11-01T00:00:00Z to 2026-12-01T00:00:00Z); 40 used, 60 held by calls in flight, and this request "
        "may use up to 30. It resets at 2026-12-01T00:00:00Z."
    )
    assert error.limit == "entitlement:output-tokens"
    assert error.retry_after_s == 7 * 86400 + 12 * 3600  # until 12-01 00:00
    assert error.resets_at == datetime(2026, 12, 1, tzinfo=UTC)


async def test_settle_counts_the_metered_usage_and_release_after_it_changes_nothing() -> None:
    w = await world_with(card("output-tokens", HARD_100))
    first, second = await w.admit(), await w.admit()
    assert first is not None
    assert second is not None
    first.settle(w.call(output=10))  # the call used 10 of its 30
    assert await w.counter(first) == (Decimal(50), Decimal(30))
    first.release()
    first.settle(w.call(output=10))
    assert await w.counter(first) == (Decimal(50), Decimal(30))  # exactly once
    with pytest.raises(LimitExceededError):
        await w.admit()  # 50 + 30 + 30 > 100
    second.release()  # a failed or cancelled call: its hold goes, nothing is counted
    second.release()
    assert await w.counter(first) == (Decimal(50), Decimal(0))
    assert await w.admit() is not None


async def test_fifty_at_once_admit_exactly_what_fits_and_seed_once() -> None:
    w = await world_with(card("output-tokens", HARD_100))
    holds = await asyncio.gather(*(w.admit(output=6) for _ in range(50)), return_exceptions=True)
    admitted = [h for h in holds if isinstance(h, Hold)]
    refused = [h for h in holds if isinstance(h, LimitExceededError)]
    assert (len(admitted), len(refused)) == (10, 40)  # (100 - 40) / 6 = 10
    # one seeding read per counter, however many calls asked at once (the entitlement's: a plain unit price keeps
    # no period-usage counter)
    assert w.usage.reads == 1


async def test_the_next_period_starts_from_its_own_metered_usage() -> None:
    w = await world_with(card("output-tokens", HARD_100), used=100)
    with pytest.raises(LimitExceededError):
        await w.admit()
    w.clock.set(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))
    hold = await w.admit()
    assert hold is not None
    assert hold.asks[0].key.endswith(f":{int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())}")
    assert await w.counter(hold) == (Decimal(0), Decimal(30))


async def test_soft_limits_and_features_without_entitlement_pass() -> None:
    soft = EntitlementTemplate("metered", limit=Decimal(10), hard=False)
    w = await world_with(card("output-tokens", soft), card("input-tokens"), used=500)
    hold = await w.admit()  # priced on the plan, but no hard limit governs the call
    assert hold is not None
    assert hold.asks == ()  # plain unit prices: no period usage to keep, nothing held
    hold.settle(w.call(output=20, input_=5))
    assert (hold.cost, hold.currency) == (Decimal("0.00025"), "USD")  # 25 tokens at 0.00001


async def test_a_tiered_price_keeps_the_period_usage_and_prices_the_call_at_it() -> None:
    tiered = UsageTerms(TieredPrice("graduated", (Tier(Decimal(1000), Decimal("0.01")), Tier(None, Decimal("0.002")))))
    w = await world_with(RateCard("output-tokens", "output-tokens", "output-tokens", usage=tiered), used=990)
    hold = await w.admit(output=30)
    assert hold is not None
    assert [(ask.key.split(":")[0], ask.amount, ask.limit) for ask in hold.asks] == [("use", Decimal(30), None)]
    assert await w.counter(hold) == (Decimal(990), Decimal(30))  # seeded from the metered usage
    hold.settle(w.call(output=30))
    assert hold.cost == Decimal("0.14")  # 10 more at 0.01 up to the tier's end, then 20 at 0.002


@pytest.mark.parametrize("priced", [False, True])
async def test_a_gated_feature_needs_its_boolean_entitlement_or_a_price(priced: bool) -> None:
    """Gold grants output-tokens with a boolean entitlement: a plan without the feature is refused; one that
    prices it (no entitlement: unlimited) is not (tollway.billing.entitlements.feature_access)."""
    w = await world_with(card("input-tokens"), *([card("output-tokens")] if priced else []))
    other = await w.catalog.plans.create_plan(
        key="gold",
        name="Gold",
        currency="USD",
        billing_cadence="P1M",
        phases=(Phase("default", "Default", (card("output-tokens", EntitlementTemplate("boolean")),)),),
    )
    await w.catalog.plans.publish_plan(other.id)
    await w.keeper.refresh()
    if priced:
        hold = await w.admit()  # priced on the customer's plan: unlimited, no hard limit to hold against
        assert hold is not None
        assert all(ask.limit is None for ask in hold.asks)
        assert (await w.catalog.entitlements.entitlement_value("acme", "output-tokens")).has_access is True
        return
    with pytest.raises(ForbiddenError) as refused:
        await w.admit()
    assert "does not include the feature 'output-tokens'" in refused.value.message
    assert (
        await w.catalog.entitlements.entitlement_value("acme", "output-tokens")
    ).has_access is False  # the value agrees


async def test_no_subscription_is_a_setting() -> None:
    w = await world_with(card("output-tokens", HARD_100), subscribe=False)
    assert await w.admit() is None  # allowed, metered
    strict = SpendAdmission(w.counters, w.usage, w.clock, w.keeper.current, no_subscription="refuse")
    worst = w.call()
    with pytest.raises(ForbiddenError) as refused:
        await strict.admit(SpendCall(worst.request_id, "acme-corp", (worst,)))
    assert (
        refused.value.message
        == "customer 'acme' has no active subscription, and this gateway refuses calls without one."
    )


async def test_reconcile_raises_a_counter_to_the_metered_usage() -> None:
    w = await world_with(card("output-tokens", HARD_100))
    hold = await w.admit()
    assert hold is not None
    hold.release()
    await w.events.insert_events(llm_call_events(w.call(output=45, ago=1)))  # usage another process metered
    w.clock.advance(timedelta(seconds=1))
    assert await w.admission.reconcile() == 1  # the entitlement (a plain unit price keeps no period usage)
    assert await w.counter(hold) == (Decimal(85), Decimal(0))
