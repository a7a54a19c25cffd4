"""Spend control's pure parts: windows, the marginal price of a call, a call's measure, the worst-case estimate."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import cast

import pytest

from tollway.billing.pricing.model import Tier, TieredPrice, UnitPrice, UsageTerms
from tollway.clock import FrozenClock
from tollway.gateway.admission import GatewayAdmission, conservative_tokens, requested_output
from tollway.gateway.hooks import Admit
from tollway.gateway.providers.base import Provider
from tollway.gateway.routing import Route, Target
from tollway.gateway.state import GatewayState
from tollway.identity.key_index import Identity
from tollway.metering.llm import LlmCall, TokenPrice, TokenUsage, llm_call_events
from tollway.metering.meters import BUILT_IN_METERS
from tollway.spend.admission import SpendAdmission
from tollway.spend.limits import PricedFeature, _linear_cost, _plan_cost
from tollway.spend.measure import FeatureMeasure
from tollway.spend.pricing import call_cost, marginal_cost
from tollway.spend.windows import Window, window_at

AT = datetime(2026, 2, 28, 17, 45, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "start", "end"),
    [
        ("hour", datetime(2026, 2, 28, 17, tzinfo=UTC), datetime(2026, 2, 28, 18, tzinfo=UTC)),
        ("day", datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
        ("month", datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
        ("billing_period", datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),  # no plan
    ],
)
def test_windows(kind: str, start: datetime, end: datetime) -> None:
    assert window_at(kind, AT) == Window(start, end)  # type: ignore[arg-type]


def test_billing_period_and_lifetime_windows() -> None:
    anchored = window_at("billing_period", AT, anchor=datetime(2026, 1, 31, 9, tzinfo=UTC), cadence="P1M")
    assert anchored == Window(datetime(2026, 2, 28, 9, tzinfo=UTC), datetime(2026, 3, 31, 9, tzinfo=UTC))
    assert anchored.seconds_left(AT) == 31 * 86400 - 8 * 3600 - 45 * 60 - 30
    lifetime = window_at("lifetime", AT)
    assert (lifetime.end, lifetime.seconds_left(AT), lifetime.tag) == (None, 0, "0")


GRADUATED = UsageTerms(
    price=TieredPrice("graduated", (Tier(Decimal(1000), Decimal("0.01")), Tier(None, Decimal("0.002")))),
    free_quantity=Decimal(100),
)


def test_marginal_cost_prices_across_a_tier_boundary_after_the_free_quantity() -> None:
    assert marginal_cost(Decimal(50), Decimal(40), GRADUATED) == Decimal(0)  # all within the free 100
    # 1050 -> 1150 used: the billable 950 -> 1050 crosses the 1000 tier: 50 x 0.01 + 50 x 0.002
    assert marginal_cost(Decimal(1050), Decimal(100), GRADUATED) == Decimal("0.6")
    unit = UsageTerms(price=UnitPrice(Decimal("0.00001")), maximum_amount=Decimal("1"))
    assert marginal_cost(Decimal(99_990), Decimal(100), unit) == Decimal("0.0001")  # capped at 100,000 units
    cards = {"output-tokens": unit, "input-tokens": GRADUATED}
    deltas = {"output-tokens": Decimal(30), "input-tokens": Decimal(100)}
    used = {"input-tokens": Decimal(1050)}
    assert call_cost(deltas, used, cards) == Decimal("0.6003")


def call(output: int, price: TokenPrice | None = None, status: int = 200) -> LlmCall:
    return LlmCall(
        request_id="r1",
        subject="acme-corp",
        time=AT,
        model="demo",
        upstream_model="demo-1",
        provider="local",
        route="/v1/chat/completions",
        status_code=status,
        streamed=False,
        usage=TokenUsage(input=12, output=output, cache_read=4),
        price=price,
    )


def test_a_measure_counts_what_the_meter_counts_of_the_calls_events() -> None:
    meters = {meter.slug: meter for meter in BUILT_IN_METERS}
    output = FeatureMeasure.of(meters["llm_tokens"], {"type": ["output"]})
    prompt = FeatureMeasure.of(meters["llm_tokens"], {"type": ["input", "cache_read"]})
    requests = FeatureMeasure.of(meters["llm_requests"], {})
    cost = FeatureMeasure.of(meters["llm_cost"], {})
    other_model = FeatureMeasure.of(meters["llm_tokens"], {"model": ["gpt-4o"]})
    priced = call(30, TokenPrice(Decimal("0.000001"), Decimal("0.00001")))
    events = llm_call_events(priced)
    # read from the call's record (the built-in meters) and through its events: the same numbers
    assert [m.amount(priced) for m in (output, prompt, requests, cost, other_model)] == [
        m.amount_of_events(events) for m in (output, prompt, requests, cost, other_model)
    ]
    assert [m.amount(priced) for m in (output, prompt, requests, cost, other_model)] == [
        Decimal(30),
        Decimal(16),
        Decimal(1),
        Decimal("0.000316"),  # 16 x 0.000001 + 30 x 0.00001
        Decimal(0),
    ]
    with pytest.raises(ValueError, match="no dimension 'region'"):
        FeatureMeasure.of(meters["llm_tokens"], {"region": ["eu"]})


def test_the_output_a_request_asks_for_and_the_conservative_input_estimate() -> None:
    assert requested_output({"max_completion_tokens": 7, "max_tokens": 9}) == 7
    assert requested_output({"max_output_tokens": 12}) == 12
    assert requested_output({"generationConfig": {"maxOutputTokens": 5}}) == 5
    assert requested_output({"max_tokens": True}) is None
    assert requested_output({"max_tokens": 0}) is None
    assert conservative_tokens("abcdefg") == 3  # '"abcdefg"' is 9 bytes
    assert conservative_tokens("日本語") == 4  # 9 bytes of UTF-8 plus the 2 quotes: 11 / 3 rounded up


def test_a_plans_linear_cost_equals_its_cost_through_the_measures() -> None:
    meters = {meter.slug: meter for meter in BUILT_IN_METERS}

    def feature(key: str, filters: dict[str, list[str]], unit: str) -> PricedFeature:
        measure = FeatureMeasure.of(meters["llm_tokens"], filters)
        terms = UsageTerms(UnitPrice(Decimal(unit)))
        return PricedFeature(key, measure, terms, f"use:{key}", AT, Window(AT, None), unit=Decimal(unit))

    priced = [
        feature("in", {"type": ["input", "cache_read"]}, "0.000003"),
        feature("out", {"type": ["output"]}, "0.0000125"),
        feature("all", {}, "0.0000001"),
    ]
    linear = _linear_cost(priced)
    assert linear is not None
    through = _plan_cost(priced, {})
    for c in (call(30, None), call(0, None), replace(call(7, None), usage=None)):
        assert linear(c) == through(c)
        assert str(linear(c)) == str(through(c))  # the same Decimal, exponent included
    assert linear(call(30, None)) == Decimal("0.0004276")  # 16 x 0.000003 + 30 x 0.0000125 + 46 x 0.0000001
    # a feature filtered on another dimension than the token type is measured, not compiled
    assert _linear_cost([*priced, feature("gpt", {"model": ["gpt-4o"]}, "1")]) is None


class _Upstream:
    def __init__(self, name: str, counted: int | None = None) -> None:
        self.name = name
        if counted is not None:  # a provider that counts prompt tokens itself (token_count.CountsTokens)
            self.count_prompt_tokens = lambda payload: counted


def test_a_calls_worst_case_on_each_target_estimates_the_prompt_once_and_counts_where_the_target_can(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    estimated: list[object] = []

    def counting_estimate(value: object) -> int:
        estimated.append(value)
        return conservative_tokens(value)

    monkeypatch.setattr("tollway.gateway.admission.conservative_tokens", counting_estimate)
    targets = (
        Target(cast(Provider, _Upstream("sim", counted=5)), "m1"),
        Target(cast(Provider, _Upstream("a")), "m2"),
        Target(cast(Provider, _Upstream("b")), "m3"),
        Target(cast(Provider, _Upstream("sim2", counted=9)), "m4"),
    )
    route = Route("bench", targets)
    payload = {"model": "bench", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 40}
    state = cast(GatewayState, SimpleNamespace(prices={}))
    gateway = GatewayAdmission(cast(SpendAdmission, None), lambda: state, FrozenClock(AT))
    admit = Admit("r1", Identity("acme", None), "bench", "/v1/chat/completions", False, payload, route, payload)
    cases = gateway.worst_cases(admit, route)
    estimate = conservative_tokens({"model": "bench", "messages": payload["messages"]})
    assert [(c.upstream_model, c.usage) for c in cases] == [
        ("m1", TokenUsage(input=5, output=40)),
        ("m2", TokenUsage(input=estimate, output=40)),
        ("m3", TokenUsage(input=estimate, output=40)),
        ("m4", TokenUsage(input=9, output=40)),
    ]
    assert len(estimated) == 1  # the prompt's JSON text built once for both targets that count no tokens
