"""Balancing strategies, breakers, budgets and cool-downs of the target policy, on a frozen clock."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError as PydanticError

from tests.support.balancing import Harness, Named, config, targets
from tests.support.prometheus import prometheus_value
from tollway.config.loader import load_config
from tollway.config.schema import balanced_models
from tollway.errors import ConfigError, RateLimitedError, UnavailableError
from tollway.gateway.balancing.health import check_once
from tollway.gateway.hooks import Admit
from tollway.gateway.providers.base import BufferedResponse, UpstreamError, UpstreamRequest, UpstreamResponse
from tollway.gateway.routing import Route, Target
from tollway.identity.key_index import Identity
from tollway.metering.llm import TokenPrice


def firsts(harness: Harness, picks: int, *, stream: bool = False) -> Counter[str]:
    return Counter(harness.order(stream=stream)[0] for _ in range(picks))


# strategies ------------------------------------------------------------------------------------------------


def test_priority_is_the_configured_order_and_costs_no_copy() -> None:
    harness = Harness({"name": "smart", "targets": targets("a", "b", "c")})
    assert harness.policy.targets(harness.route, harness.call) is harness.route.targets


def test_weighted_split_follows_the_weights_exactly_over_1000_picks() -> None:
    harness = Harness(
        {
            "name": "smart",
            "balance": "weighted",
            "targets": [{"provider": "a", "model": "m", "weight": 3}, {"provider": "b", "model": "m", "weight": 1}],
        }
    )
    assert [harness.order()[0] for _ in range(4)] == ["a", "a", "b", "a"]  # smooth: never b, b in a row
    assert firsts(harness, 1000) == {"a": 750, "b": 250}
    assert harness.order() == ["a", "b"]  # the other target follows, for failover


def test_weighted_three_ways_and_unusable_targets_leave_the_rotation() -> None:
    harness = Harness(
        {
            "name": "smart",
            "balance": {"strategy": "weighted"},
            "breaker": {"failures": 1, "cooldown_s": 30},
            "targets": [
                {"provider": "a", "model": "m", "weight": 5},
                {"provider": "b", "model": "m", "weight": 3},
                {"provider": "c", "model": "m", "weight": 2},
            ],
        }
    )
    assert firsts(harness, 1000) == {"a": 500, "b": 300, "c": 200}
    harness.attempt("a", "unreachable", status=None, ttfb_s=None)
    assert firsts(harness, 1000) == {"b": 600, "c": 400}


def test_least_busy_prefers_the_target_with_fewest_tries_in_flight() -> None:
    harness = Harness({"name": "smart", "balance": "least_busy", "targets": targets("a", "b")})
    assert harness.order() == ["a", "b"]
    harness.policy.started(harness.target("a"))
    assert harness.order() == ["b", "a"]
    harness.policy.started(harness.target("b"))
    harness.policy.started(harness.target("b"))
    assert harness.order() == ["a", "b"]


def test_lowest_latency_moves_off_a_target_that_slows_down_and_back_after_it_recovers() -> None:
    harness = Harness(
        {
            "name": "smart",
            "balance": {"strategy": "lowest_latency", "explore": 0.1, "seed": 7},
            "targets": targets("a", "b"),
        }
    )
    latency = {"a": 0.2, "b": 0.5}

    def serve(requests: int) -> Counter[str]:
        served: Counter[str] = Counter()
        for _ in range(requests):
            first = harness.order()[0]
            harness.attempt(first, ttfb_s=latency[first] / 2, total_s=latency[first])
            served[first] += 1
        return served

    assert serve(500)["a"] >= 450  # a is faster
    latency["a"] = 3.0  # a slows down
    serve(100)  # the averages catch up
    assert serve(500)["b"] >= 450
    latency["a"] = 0.1  # a recovers: exploration samples it again
    assert serve(500)["a"] >= 200  # exploration samples it again; six samples bring its average under b's
    assert serve(500)["a"] >= 450


def test_lowest_latency_probes_a_target_passed_over_probe_every_requests_in_a_row() -> None:
    harness = Harness(
        {
            "name": "smart",
            "balance": {"strategy": "lowest_latency", "explore": 0, "probe_every": 4},
            "targets": targets("a", "b"),
        }
    )
    harness.attempt("a", total_s=0.1)
    harness.attempt("b", total_s=2.0)
    firsts_seen = []
    for _ in range(10):
        first = harness.order()[0]
        firsts_seen.append(first)
        harness.attempt(first, total_s=0.1 if first == "a" else 2.0)
    assert firsts_seen == ["a", "a", "a", "a", "b", "a", "a", "a", "a", "b"]


def test_lowest_latency_uses_time_to_first_byte_for_streams() -> None:
    harness = Harness(
        {"name": "smart", "balance": {"strategy": "lowest_latency", "explore": 0}, "targets": targets("a", "b")}
    )
    harness.attempt("a", ttfb_s=0.9, total_s=1.0)  # slow first token, short answer
    harness.attempt("b", ttfb_s=0.1, total_s=4.0)  # fast first token, long answer
    assert harness.order(stream=True) == ["b", "a"]
    assert harness.order(stream=False) == ["a", "b"]


def test_cost_puts_the_cheaper_target_first_for_the_expected_request() -> None:
    prices = {
        ("a", "m"): TokenPrice(input=Decimal("0.000005"), output=Decimal("0.000015")),  # 1000 in, 500 out: 0.0125
        ("b", "m"): TokenPrice(input=Decimal("0.000003"), output=Decimal("0.000015")),  # 0.0105
    }
    harness = Harness({"name": "smart", "balance": "cost", "targets": targets("a", "b", "c")}, prices)
    assert harness.order() == ["b", "a", "c"]  # c has no known price: last
    output_heavy = Harness(
        {
            "name": "smart",
            "balance": {"strategy": "cost", "expected_input_tokens": 100, "expected_output_tokens": 1000},
            "targets": targets("a", "b"),
        },
        {
            ("a", "m"): TokenPrice(input=Decimal("0.000001"), output=Decimal("0.00001")),  # 0.0101
            ("b", "m"): TokenPrice(input=Decimal("0.00001"), output=Decimal("0.000009")),  # 0.01
        },
    )
    assert output_heavy.order() == ["b", "a"]


def test_groups_balance_within_and_fall_through_when_a_whole_group_is_down() -> None:
    harness = Harness(
        {
            "name": "smart",
            "balance": "weighted",
            "breaker": {"failures": 1, "cooldown_s": 60},
            "targets": [
                {"provider": "a", "model": "m", "group": 0},
                {"provider": "b", "model": "m", "group": 0},
                {"provider": "c", "model": "m", "group": 1},
            ],
        }
    )
    assert firsts(harness, 100) == {"a": 50, "b": 50}
    assert harness.order()[-1] == "c"  # the next group is the last resort
    harness.attempt("a", "timeout", status=None, ttfb_s=None)
    assert harness.order() == ["b", "c"]
    harness.attempt("b", "status", status=503)
    assert harness.order() == ["c"]


# breaker ---------------------------------------------------------------------------------------------------


def test_breaker_opens_probes_once_and_closes_on_a_frozen_clock(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tollway.gateway.breaker")
    harness = Harness({"name": "smart", "breaker": {"failures": 3, "cooldown_s": 30}, "targets": targets("a", "b")})
    for _ in range(2):
        harness.attempt("a", "status", status=500)
    harness.attempt("a")  # a success resets the count of consecutive failures
    for _ in range(2):
        harness.attempt("a", "status", status=500)
    assert harness.order() == ["a", "b"]
    harness.attempt("a", "unreachable", status=None, ttfb_s=None)  # third in a row: open
    for _ in range(5):
        assert harness.order() == ["b"]  # skipped without a try
    harness.later(29.9)
    assert harness.order() == ["b"]
    harness.later(0.1)  # the cool-down is over: half-open, one probe
    assert harness.order() == ["a", "b"]  # the probe goes first; the flow fails over to b if it fails
    assert harness.order() == ["b"]  # exactly one probe: the next request does not get a
    harness.attempt("a")  # the probe succeeded
    assert harness.order() == ["a", "b"]
    assert [r.getMessage() for r in caplog.records] == [
        "breaker a/m open after 3 consecutive failures",
        "breaker a/m half-open: one probe request after the cool-down",
        "breaker a/m closed: the probe succeeded",
    ]


def test_a_failed_probe_opens_the_breaker_for_another_cool_down() -> None:
    harness = Harness({"name": "smart", "breaker": {"failures": 1, "cooldown_s": 10}, "targets": targets("a", "b")})
    harness.attempt("a", "timeout", status=None, ttfb_s=None, total_s=30.0)
    harness.later(10)
    assert harness.order() == ["a", "b"]
    harness.attempt("a", "status", status=502)
    assert harness.order() == ["b"]
    harness.later(9)
    assert harness.order() == ["b"]
    harness.later(1)
    assert harness.order() == ["a", "b"]


def test_a_probe_that_was_never_tried_is_handed_out_again_after_a_cool_down() -> None:
    harness = Harness({"name": "smart", "breaker": {"failures": 1, "cooldown_s": 10}, "targets": targets("a", "b")})
    harness.attempt("a", "unreachable", status=None, ttfb_s=None)
    harness.later(10)
    assert harness.order() == ["a", "b"]  # the request carrying the probe never reports it
    harness.later(5)
    assert harness.order() == ["b"]
    harness.later(5)
    assert harness.order() == ["a", "b"]


def test_breaker_opens_on_the_failure_rate_over_its_window() -> None:
    harness = Harness(
        {
            "name": "smart",
            "breaker": {"failures": 100, "failure_rate": 0.5, "window_s": 60, "min_requests": 10},
            "targets": targets("a", "b"),
        }
    )
    for _ in range(5):
        harness.attempt("a")
        harness.attempt("a", "status", status=500)
        harness.later(1)
    assert harness.order() == ["b"]  # 5 of the last 10 failed


def test_failures_outside_the_window_do_not_count_toward_the_rate() -> None:
    harness = Harness(
        {
            "name": "smart",
            "breaker": {"failures": 100, "failure_rate": 0.5, "window_s": 60, "min_requests": 4},
            "targets": targets("a", "b"),
        }
    )
    for _ in range(3):
        harness.attempt("a", "status", status=500)
    harness.later(120)
    harness.attempt("a", "status", status=500)
    for _ in range(3):
        harness.attempt("a")
    assert harness.order() == ["a", "b"]  # 1 of 4 in the window


def test_every_target_unusable_fails_fast_with_503() -> None:
    harness = Harness({"name": "smart", "breaker": {"failures": 1, "cooldown_s": 30}, "targets": targets("a", "b")})
    harness.attempt("a", "unreachable", status=None, ttfb_s=None)
    harness.attempt("b", "timeout", status=None, ttfb_s=None)
    assert harness.policy.unusable_models() == ["smart"]
    with pytest.raises(UnavailableError) as raised:
        harness.order()
    assert raised.value.code == "no_usable_target"
    assert "try again in 30 s" in raised.value.message


# cool-downs and budgets ------------------------------------------------------------------------------------


def test_a_429_with_retry_after_cools_the_target_down_without_counting_for_the_breaker() -> None:
    harness = Harness({"name": "smart", "breaker": {"failures": 1, "cooldown_s": 30}, "targets": targets("a", "b")})
    harness.attempt("a", "status", status=429, retry_after_s=20.0)
    assert harness.order() == ["b"]
    harness.later(20)
    assert harness.order() == ["a", "b"]  # the breaker stayed closed: no probe needed


def test_a_model_whose_targets_are_all_rate_limited_fails_fast_with_429_and_retry_after() -> None:
    harness = Harness({"name": "solo", "targets": targets("a")})
    harness.attempt("a", "status", status=429, retry_after_s=2.0)
    harness.later(0.5)
    with pytest.raises(RateLimitedError) as raised:
        harness.order()
    assert raised.value.retry_after_s == 2  # 1.5 s, rounded up
    assert raised.value.code == "targets_rate_limited"
    harness.later(2)
    assert harness.order() == ["a"]


def test_requests_per_minute_budget_skips_the_target_until_the_minute_ends() -> None:
    harness = Harness(
        {
            "name": "smart",
            "targets": [
                {"provider": "a", "model": "m", "budget": {"requests_per_minute": 3}},
                {"provider": "b", "model": "m"},
            ],
        }
    )
    harness.later(30)  # 12:00:30
    for _ in range(3):
        assert harness.order()[0] == "a"
        harness.attempt("a")
    assert harness.order() == ["b"]
    harness.later(29.9)
    assert harness.order() == ["b"]
    harness.later(0.1)  # 12:01:00, a new minute
    assert harness.order() == ["a", "b"]


def test_tokens_per_minute_budget_counts_the_usage_each_answer_reported() -> None:
    harness = Harness(
        {
            "name": "smart",
            "targets": [{"provider": "a", "model": "m", "budget": {"tokens_per_minute": 1000}}, *targets("b")],
        }
    )
    harness.policy.spent("a", "m", 999)
    assert harness.order() == ["a", "b"]
    harness.policy.spent("a", "m", 1)
    assert harness.order() == ["b"]
    harness.later(60)
    assert harness.order() == ["a", "b"]


# reload, config, metrics -----------------------------------------------------------------------------------


def test_reload_keeps_the_state_of_unchanged_targets_and_resets_changed_ones() -> None:
    model = {"name": "smart", "breaker": {"failures": 1, "cooldown_s": 30}, "targets": targets("a", "b", "c")}
    harness = Harness(model)
    harness.attempt("a", "unreachable", status=None, ttfb_s=None)
    harness.attempt("b", "unreachable", status=None, ttfb_s=None)
    harness.attempt("c", ttfb_s=0.25, total_s=0.5)
    reloaded = config(model)
    providers = [
        p.model_copy(update={"base_url": "http://elsewhere.example/v1"}) if p.name == "b" else p
        for p in reloaded.providers
    ]
    harness.policy.configure(balanced_models(reloaded.models, providers), {})
    assert harness.order() == ["b", "c"]  # a kept its open breaker; b moved to another URL: a fresh state
    by_key = {state.key: state for state in harness.policy.states()}
    assert by_key[("c", "m")].ewma_total == 0.5


def test_config_shapes_and_their_errors() -> None:
    parsed = config({"name": "smart", "balance": "lowest_latency", "targets": targets("a")})
    assert parsed.models[0].balance.strategy == "lowest_latency"
    assert parsed.models[0].breaker is None  # off unless configured
    with pytest.raises(PydanticError, match="strategy"):
        config({"name": "smart", "balance": "fastest", "targets": targets("a")})
    with pytest.raises(PydanticError, match="requests_per_minute or tokens_per_minute"):
        config({"name": "smart", "targets": [{"provider": "a", "model": "m", "budget": {}}]})
    with pytest.raises(PydanticError, match="weight"):
        config({"name": "smart", "targets": [{"provider": "a", "model": "m", "weight": 0}]})
    with pytest.raises(PydanticError, match="model 'two': target a/m is also a target of model 'one'"):
        config(
            {"name": "one", "breaker": {"failures": 3}, "targets": targets("a")},
            {"name": "two", "breaker": {"failures": 5}, "targets": targets("a")},
        )


class Answering(Named):
    """A provider whose answers a test sets: a status, or no answer at all."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.status: int | None = 200
        self.sent: list[UpstreamRequest] = []

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        self.sent.append(request)
        if self.status is None:
            raise UpstreamError("connection refused")

        async def body() -> AsyncIterator[bytes]:
            yield b"{}"

        return BufferedResponse(self.status, "application/json", body())


async def test_health_checks_feed_the_breaker() -> None:
    harness = Harness(
        {
            "name": "smart",
            "breaker": {"failures": 2, "cooldown_s": 30},
            "health_check": {"interval_s": 10, "timeout_s": 1},
            "targets": targets("a", "b"),
        }
    )
    provider = Answering("a")
    (checked_a, _) = harness.policy.health_targets
    assert (checked_a.provider, checked_a.model) == ("a", "m")

    async def check() -> None:
        harness.policy.health(checked_a.state, await check_once(provider, "m", 1.0))

    provider.status = None
    await check()
    provider.status = 503
    await check()
    assert harness.order() == ["b"]  # two failed checks open the breaker, no client request needed
    assert provider.sent[0].payload == {
        "model": "m",
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    }
    provider.status = 200
    await check()
    assert harness.order() == ["b"], "a passing check does not cut the cool-down short"
    harness.later(30)
    await check()
    assert harness.order() == ["a", "b"], "after the cool-down a passing check closes the breaker"


def test_tollway_check_reports_every_balancing_problem_on_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "tollway.yaml"
    path.write_text(
        "providers: [{name: a, type: openai, base_url: 'http://a.example/v1'}]\n"
        "models:\n"
        "  - name: smart\n"
        "    balance: fastest\n"
        "    breaker: {failures: 0}\n"
        "    health_check: {interval_s: 0}\n"
        "    targets: [{provider: a, model: m, weight: 0, group: -1, budget: {}}]\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, {})
    problems = "\n".join(raised.value.problems)
    for where in (
        "models[0].balance.strategy",
        "models[0].breaker.failures",
        "models[0].health_check.interval_s",
        "models[0].targets[0].weight",
        "models[0].targets[0].group",
        "models[0].targets[0].budget: a budget needs requests_per_minute or tokens_per_minute",
    ):
        assert where in problems


def test_metrics_show_tries_failures_breaker_and_in_flight_per_target() -> None:
    harness = Harness({"name": "smart", "breaker": {"failures": 1, "cooldown_s": 30}, "targets": targets("a", "b")})
    harness.attempt("a", "timeout", status=None, ttfb_s=None, total_s=5.0)
    harness.attempt("b", ttfb_s=0.05, total_s=0.3)
    harness.policy.started(harness.target("b"))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(harness.policy.metrics)
    text = generate_latest(registry).decode()
    for selector, value in (
        ('tollway_target_attempts_total{provider="a",model="m"}', 1),
        ('tollway_target_attempts_total{provider="b",model="m"}', 2),
        ('tollway_target_failures_total{provider="a",model="m",cause="timeout"}', 1),
        ('tollway_target_breaker_state{provider="a",model="m"}', 2),
        ('tollway_target_breaker_state{provider="b",model="m"}', 0),
        ('tollway_target_in_flight{provider="b",model="m"}', 1),
        ('tollway_target_usable{provider="a",model="m"}', 0),
        ('tollway_target_ttfb_seconds_count{provider="b",model="m"}', 1),
        ('tollway_target_duration_seconds_count{provider="a",model="m"}', 1),
    ):
        assert prometheus_value(text, selector) == value, selector


def test_an_adapted_route_gets_its_own_targets_back_in_the_chosen_order() -> None:
    harness = Harness(
        {
            "name": "smart",
            "balance": "weighted",
            "targets": [{"provider": "a", "model": "m", "weight": 1}, {"provider": "b", "model": "m", "weight": 2}],
        }
    )
    adapted = Route(
        model="smart", targets=tuple(Target(Named(t.provider.name), t.model) for t in harness.route.targets)
    )
    chosen: Sequence[Target] = harness.policy.targets(adapted, harness.call)
    assert chosen[0] is adapted.targets[1]
    # weights 1:2 give b, a, b, b, a, b, ...: each view of the route gets its own target objects
    picks = [harness.policy.targets(route, harness.call) for route in (harness.route, adapted) * 3]
    assert [p[0].provider.name for p in picks] == ["a", "b", "b", "a", "b", "b"]
    for number, pick in enumerate(picks):
        view = (harness.route, adapted)[number % 2]
        assert all(any(t is own for own in view.targets) for t in pick)


def test_cost_prices_each_call_by_its_own_prompt() -> None:
    """a: cheap input, dear output; b: the reverse. With 100 output tokens expected, a costs
    0.000001 T + 0.003 and b 0.00001 T + 0.001: b is cheaper below T = 222 prompt tokens, a above."""
    harness = Harness(
        {
            "name": "smart",
            "balance": {"strategy": "cost", "expected_input_tokens": 5000, "expected_output_tokens": 100},
            "targets": targets("a", "b"),
        },
        {
            ("a", "m"): TokenPrice(input=Decimal("0.000001"), output=Decimal("0.00003")),
            ("b", "m"): TokenPrice(input=Decimal("0.00001"), output=Decimal("0.00001")),
        },
    )

    def order(text: str) -> list[str]:
        prompt = {"messages": [{"role": "user", "content": text}]}
        call = Admit("req_9", Identity("acme", None), "smart", "/v1/chat/completions", False, prompt)
        return [t.provider.name for t in harness.policy.targets(harness.route, call)]

    assert order("Hi") == ["b", "a"]  # a few tokens
    assert order("lorem ipsum " * 400) == ["a", "b"]  # 4,800 characters: well over 222 tokens
    assert harness.order() == ["a", "b"]  # no prompt on the call: the expected 5,000 input tokens
