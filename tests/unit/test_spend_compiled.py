"""A compiled plan (spend/compiled.py) asks exactly what `Plan.govern` asks of the worst-case calls it stands for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import cast

import pytest

from tollway.adapters.memory.counters import MemoryCounterStore
from tollway.billing.customers import Customer
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.features import Feature
from tollway.billing.plans import Phase, Plan, RateCard
from tollway.billing.pricing.model import UnitPrice, UsageTerms
from tollway.billing.subscriptions import Subscription
from tollway.clock import FrozenClock
from tollway.errors import ForbiddenError
from tollway.gateway.admission import GatewayAdmission
from tollway.gateway.hooks import Admit
from tollway.gateway.providers.base import Provider
from tollway.gateway.routing import Route, Target
from tollway.gateway.state import GatewayState
from tollway.identity.key_index import Identity
from tollway.metering.llm import TokenPrice, TokenUsage
from tollway.metering.meters import BUILT_IN_METERS, Meter
from tollway.metering.running_totals import Filters
from tollway.money import decimal_text
from tollway.spend.admission import SpendAdmission
from tollway.spend.budgets import Budget
from tollway.spend.hold import Hold
from tollway.spend.rate_limits import RateLimit
from tollway.spend.rules import SpendRules

NOW = datetime(2026, 11, 23, 12, 0, 17, 250_000, tzinfo=UTC)
START = NOW - timedelta(days=3)
PRICES = {
    ("a", "m1"): TokenPrice(Decimal("0.0000025"), Decimal("0.00001")),
    ("b", "m2"): TokenPrice(Decimal("0.000001"), Decimal("0.00004")),
}


class NoUsage:
    async def usage(
        self, meter: Meter, subjects: Sequence[str], filters: Filters, start: datetime, at: datetime
    ) -> Decimal:
        return Decimal(0)


class Upstream:
    def __init__(self, name: str) -> None:
        self.name = name


class Counting(Upstream):
    """A provider that counts a prompt's tokens itself (token_count.CountsTokens)."""

    def count_prompt_tokens(self, prompt: object) -> int:
        return 42


def rules(*, subscribed: bool, gated: bool = False, few: bool = False) -> SpendRules:
    """`few`: one money budget and one requests rate limit (no measure read twice)."""
    features = [
        Feature("f1", "input-tokens", "Input", "llm_tokens", {"type": ("input",)}),
        Feature("f2", "output-tokens", "Output", "llm_tokens", {"type": ("output",)}),
        Feature("f3", "all-tokens", "All", "llm_tokens", {}),
    ]
    output_card = RateCard(
        "output",
        "Output",
        "output-tokens",
        usage=UsageTerms(UnitPrice(Decimal("0.00001"))),
        entitlement=EntitlementTemplate("metered", limit=Decimal(10**9), hard=True),
    )
    cards: tuple[RateCard, ...] = (
        RateCard("input", "Input", "input-tokens", usage=UsageTerms(UnitPrice(Decimal("0.000003")))),
        output_card,
        RateCard(
            "all",
            "All",
            "all-tokens",
            usage=UsageTerms(UnitPrice(Decimal("0.0000001"))),
            entitlement=EntitlementTemplate("metered", limit=Decimal(10**8), hard=True),
        ),
    )
    plans = []
    if (
        gated
    ):  # another plan grants the output feature as a boolean gate, and this one lacks it: a call using it is refused
        gate = RateCard("output", "Output", "output-tokens", entitlement=EntitlementTemplate("boolean"))
        phases = (Phase("default", "Default", (gate,)),)
        plans.append(Plan("p2", "gold", 1, "Gold", "USD", "P1M", phases, status="published"))
        cards = (cards[0],)
    plan = Plan("p1", "pro", 1, "Pro", "USD", "P1M", (Phase("default", "Default", cards),), status="published")
    plans.append(plan)
    customer = Customer("c1", "acme", "Acme", subjects=("u1",))
    subscriptions = [Subscription("s1", "c1", "p1", "pro", 1, "USD", "P1M", START, START)] if subscribed else []
    budgets = [
        Budget("b1", "acme-monthly", "customer", "acme", "money", Decimal(10**6), "month"),
        Budget("b2", "u1-daily", "consumer", "u1", "tokens", Decimal(10**7), "day"),
    ]
    rates = [
        RateLimit("r0", "in-flight", "consumer", "*", "in_flight", Decimal(50), None),
        RateLimit("r1", "rpm", "consumer", "*", "requests", Decimal(600), "minute"),
        RateLimit("r2", "tpm", "consumer", "u1", "tokens", Decimal(10**6), "minute"),
        RateLimit("r3", "otph", "customer", "acme", "output_tokens", Decimal(10**6), "hour"),
        RateLimit("r4", "itpd", "model", "*", "input_tokens", Decimal(10**8), "day"),
        RateLimit("r5", "cost", "consumer", "*", "cost", Decimal(100), "minute"),
    ]
    if few:
        budgets, rates = budgets[:1], rates[1:2]
    return SpendRules.build(1, [customer], subscriptions, plans, features, BUILT_IN_METERS, budgets, rates)


def world(snapshot: SpendRules) -> tuple[SpendAdmission, GatewayAdmission]:
    clock = FrozenClock(NOW)
    spend = SpendAdmission(MemoryCounterStore(clock), NoUsage(), clock, lambda: snapshot)
    state = cast(GatewayState, SimpleNamespace(prices=PRICES))
    return spend, GatewayAdmission(spend, lambda: state, clock)


def admit(route: Route, payload: dict[str, object], endpoint: str = "/v1/chat/completions") -> Admit:
    return Admit("r1", Identity("u1", None), route.model, endpoint, False, payload, route, payload)


ONE = Route("chat", (Target(cast(Provider, Upstream("a")), "m1"),))
TWO = Route("chat", (Target(cast(Provider, Upstream("a")), "m1"), Target(cast(Provider, Upstream("b")), "m2")))
UNPRICED = Route("chat", (Target(cast(Provider, Upstream("c")), "m3"),), max_output_tokens=77)
PROMPT = {"model": "chat", "messages": [{"role": "user", "content": "a question of some length " * 7}]}


@pytest.mark.parametrize("credits", [False, True])
@pytest.mark.parametrize("subscribed", [True, False])
@pytest.mark.parametrize(
    ("route", "payload"),
    [
        (ONE, {**PROMPT, "max_tokens": 300}),
        (TWO, {**PROMPT, "max_completion_tokens": 1000}),
        (UNPRICED, PROMPT),
        (ONE, {**PROMPT, "max_tokens": 300, "model": "other"}),  # another prompt: another shape
        (Route("chat", ()), PROMPT),  # no target: nothing measured
        (Route("chat", (Target(cast(Provider, Counting("a")), "m1"),)), PROMPT),  # one target that counts tokens
        (Route("chat", (Target(cast(Provider, Counting("a")), "m1"), TWO.targets[1])), PROMPT),
    ],
)
def test_a_compiled_plan_asks_what_the_worst_case_calls_ask(
    subscribed: bool, route: Route, payload: dict[str, object], credits: bool
) -> None:
    snapshot = rules(subscribed=subscribed)
    if credits:  # a prepaid-only customer: its credit balance is a budget too (named "credits", no remainder header)
        snapshot = replace(snapshot, credits={"acme": Decimal(50)})
    spend, gateway = world(snapshot)
    plan = spend.plan("u1", None, route.model, NOW)
    assert plan.compiled is not None
    governed = plan.govern(gateway.worst_cases(admit(route, payload), route, now=NOW), NOW)
    for moment in (NOW, NOW + timedelta(seconds=13)):  # the same shape later: kept asks, sliding ones anew
        asks, slides = plan.compiled.asks(gateway._shape(admit(route, payload), route), moment)
        expected = plan.govern(gateway.worst_cases(admit(route, payload), route, now=moment), moment)
        assert [astuple(ask) for ask in asks] == [astuple(g.ask) for g in expected]
        assert [str(ask.amount) for ask in asks] == [str(g.ask.amount) for g in expected]  # exponents too
        assert [held[:3] for held in slides] == [
            (i, g.rate, g.slide) for i, g in enumerate(expected) if g.slide is not None
        ]
        assert plan.compiled.measures == tuple(g.amount_of for g in governed)
        names = [(i, g.name[7:]) for i, g in enumerate(expected) if g.name[:7] == "budget:"]  # as _reserve names them
        assert list(plan.compiled.budget_names) == names
        distinct, each, cost = plan.compiled.picks
        assert (distinct if each is None else tuple(distinct[i] for i in each)) == plan.compiled.measures
        assert plan.pricing is not None
        assert (distinct[cost] if cost >= 0 else None) in (plan.pricing[0], None)
    # 2 entitlements with a subscription (none without a target: nothing used), 6 rate limits, 2 budgets
    assert len(asks) == (10 if subscribed and route.targets else 8) + credits


def test_a_gate_the_plan_lacks_refuses_the_compiled_call_as_the_general_way_does() -> None:
    spend, gateway = world(rules(subscribed=True, gated=True))
    plan = spend.plan("u1", None, ONE.model, NOW)
    assert plan.compiled is not None
    call = admit(ONE, {**PROMPT, "max_tokens": 10})
    with pytest.raises(ForbiddenError) as general:
        plan.govern(gateway.worst_cases(call, ONE, now=NOW), NOW)
    with pytest.raises(ForbiddenError) as compiled:
        plan.compiled.asks(gateway._shape(call, ONE), NOW)
    assert (compiled.value.message, compiled.value.code) == (general.value.message, general.value.code)
    embeddings = admit(ONE, {"model": "chat", "input": "text"}, "/v1/embeddings")  # no output: the gate is not hit
    asks, _ = plan.compiled.asks(gateway._shape(embeddings, ONE), NOW)
    expected = plan.govern(gateway.worst_cases(embeddings, ONE, now=NOW), NOW)
    assert [astuple(ask) for ask in asks] == [astuple(g.ask) for g in expected]


async def test_a_compiled_call_is_held_settled_and_released() -> None:
    spend, gateway = world(rules(subscribed=True))
    call = admit(ONE, {**PROMPT, "max_tokens": 300})
    plan = spend.plan("u1", None, ONE.model, NOW)
    assert await spend.admit_compiled(plan, gateway._shape(call, ONE), NOW) is False  # unseeded: the general way
    first = await gateway.admit(call)  # seeds, then holds
    first.release()
    held = await spend.admit_compiled(plan, gateway._shape(call, ONE), NOW)
    assert isinstance(held, Hold)
    record = replace(gateway.worst_cases(call, ONE, now=NOW)[0], usage=TokenUsage(input=20, output=7))
    held.settle(record)
    assert plan.pricing is not None
    assert (held.cost, held.currency) == (plan.pricing[0](record), "USD")
    assert held.budget_remaining() == ("acme-monthly", Decimal(10**6) - plan.pricing[0](record))
    assert held.rate_headers() == [
        (b"x-ratelimit-limit-requests", b"600"),
        (b"x-ratelimit-remaining-requests", b"599"),  # this call (the first one was released: not counted)
        (b"x-ratelimit-reset-requests", b"1m43s"),  # 2 minutes less 17.25 s into this one, rounded up
        (b"x-ratelimit-limit-tokens", b"1000000"),
        (b"x-ratelimit-remaining-tokens", b"999973"),
        (b"x-ratelimit-reset-tokens", b"1m43s"),
    ]
    held.release()
    counters = await spend._counters.read([ask.key for ask in held.asks])
    assert all(c is not None and c.reserved == 0 for c in counters)
    assert [c.used for c in counters if c is not None][:2] == [Decimal(7), Decimal(27)]  # output, all tokens


@pytest.mark.parametrize("subscribed", [True, False])
async def test_a_compiled_call_whose_limits_measure_apart_settles_each_measure(subscribed: bool) -> None:
    snapshot = rules(subscribed=subscribed, few=True)
    spend, gateway = world(snapshot)
    call = admit(ONE, {**PROMPT, "max_tokens": 300})
    plan = spend.plan("u1", None, ONE.model, NOW)
    assert plan.compiled is not None
    (await gateway.admit(call)).release()  # seeds
    held = await spend.admit_compiled(plan, gateway._shape(call, ONE), NOW)
    assert isinstance(held, Hold)
    distinct, each, _ = plan.compiled.picks
    assert each is None
    assert distinct == plan.compiled.measures
    record = replace(gateway.worst_cases(call, ONE, now=NOW)[0], usage=TokenUsage(input=20, output=7, cache_read=3))
    held.settle(record)
    assert plan.pricing is not None
    general = Hold(spend._counters, held.asks, plan.compiled.measures, cost_of=plan.pricing[0])
    general.settle(record)  # the general way: each ask's measure read by itself
    assert (held.cost, held.spend_headers()[:2]) == (general.cost, general.spend_headers()[:2])
    assert held.spend_headers()[2:] == [
        (b"x-tollway-budget-remaining", decimal_text(Decimal(10**6) - plan.pricing[0](record)).encode()),
        (b"x-tollway-budget-name", b"acme-monthly"),
        (b"x-ratelimit-limit-requests", b"600"),  # one rate limit: its three headers
        (b"x-ratelimit-remaining-requests", b"599"),
        (b"x-ratelimit-reset-requests", b"1m43s"),
    ]
    held.at = None  # without the call's moment: no rate-limit headers (as before)
    assert [name for name, _ in held.spend_headers()][2:] == [b"x-tollway-budget-remaining", b"x-tollway-budget-name"]
    counters = await spend._counters.read([ask.key for ask in held.asks])
    assert [c.used for c in counters if c is not None] == [2 * m(record) for m in plan.compiled.measures]
