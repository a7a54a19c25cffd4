"""Prepaid-only customers at the gateway (in process, memory stores): the settled credit balance is a hard money
limit on the billing period's spend, held through the same admission and reservation as budgets. 50 concurrent
calls of $0.30 worst case against $3.00 of credits admit exactly 10; the refusal names the balance and how to
top up; with a budget too, the tighter limit refuses."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.unit.test_spend_admission import World
from tollway.adapters.memory.credits import MemoryCreditStore
from tollway.billing.credit_accounts.service import CreditService, NewGrant
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import UnitPrice, UsageTerms
from tollway.errors import LimitExceededError
from tollway.spend.admission import SpendAdmission
from tollway.spend.budgets import Budget
from tollway.spend.keeper import RulesKeeper
from tollway.spend.rate_limits import RateLimit

NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)


async def prepaid_world(credit: str, *, budget: Decimal | None = None, on_plan: bool = False) -> World:
    w = World()
    await w.metering.sync_meters([])
    await w.catalog.features.create_feature(key="output-tokens", meter_slug="llm_tokens", filters={"type": ["output"]})
    cards = (
        RateCard(
            key="output-tokens",
            name="Output",
            feature_key="output-tokens",
            usage=UsageTerms(price=UnitPrice(Decimal("0.01"))),  # 30 output tokens: $0.30
        ),
    )
    plan = await w.catalog.plans.create_plan(
        key="pay",
        name="Pay",
        currency="USD",
        billing_cadence="P1M",
        phases=(Phase("default", "Default", cards),),
        metadata={"prepaid_only": "true"} if on_plan else None,
    )
    await w.catalog.plans.publish_plan(plan.id)
    await w.catalog.customers.create_customer(
        key="acme",
        name="Acme",
        subjects=["acme-corp"],
        currency="USD",
        metadata=None if on_plan else {"prepaid_only": "true"},
    )
    await w.catalog.subscriptions.create_subscription(
        customer="acme", plan_key="pay", active_from=NOV_1, billing_anchor=NOV_1
    )
    credits = CreditService(MemoryCreditStore(), w.store, w.clock)
    await credits.create("acme", NewGrant(name="Prepaid", amount=Decimal(credit)))

    class Budgets:
        async def budgets_version(self) -> int:
            return 1

        async def list_budgets(self) -> list[Budget]:
            if budget is None:
                return []
            return [Budget("b1", "acme-cap", "customer", "acme", "money", budget, "billing_period")]

        async def list_rate_limits(self) -> list[RateLimit]:
            return []

    w.keeper = RulesKeeper(w.store, w.metering, Budgets(), credits=credits.prepaid_balances)  # type: ignore[arg-type]
    w.admission = SpendAdmission(w.counters, w.usage, w.clock, w.keeper.current)
    await w.keeper.refresh()
    return w


async def test_fifty_concurrent_calls_against_credits_for_ten() -> None:
    w = await prepaid_world("3.00")
    results = await asyncio.gather(*(w.admit(output=30) for _ in range(50)), return_exceptions=True)
    admitted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, LimitExceededError)]
    assert (len(admitted), len(refused)) == (10, 40)
    message = refused[0].message
    assert message.startswith(
        "Limit reached: the prepaid credit balance of customer 'acme' allows 3 this billing period"
    )
    assert message.endswith("Top up: POST /api/v1/customers/acme/credits/grants (or set an auto-recharge).")
    assert refused[0].limit == "credits"
    assert refused[0].code == "insufficient_quota"


async def test_the_tighter_of_credits_and_a_budget_refuses() -> None:
    budget_tighter = await prepaid_world("3.00", budget=Decimal("0.90"))
    results = await asyncio.gather(*(budget_tighter.admit(output=30) for _ in range(12)), return_exceptions=True)
    refusals = {r.limit for r in results if isinstance(r, LimitExceededError)}
    assert (sum(not isinstance(r, BaseException) for r in results), refusals) == (3, {"budget:acme-cap"})
    credits_tighter = await prepaid_world("0.60", budget=Decimal("5"))
    results = await asyncio.gather(*(credits_tighter.admit(output=30) for _ in range(12)), return_exceptions=True)
    refusals = {r.limit for r in results if isinstance(r, LimitExceededError)}
    assert (sum(not isinstance(r, BaseException) for r in results), refusals) == (2, {"credits"})


async def test_an_empty_balance_refuses_the_first_call() -> None:
    w = await prepaid_world("0.01")
    with pytest.raises(LimitExceededError):
        await w.admit(output=30)


async def test_a_plan_can_make_its_customers_prepaid_only() -> None:
    w = await prepaid_world("0.60", on_plan=True)  # the flag on the plan, not the customer: room for 2
    results = await asyncio.gather(*(w.admit(output=30) for _ in range(5)), return_exceptions=True)
    assert [isinstance(r, LimitExceededError) for r in results].count(False) == 2
