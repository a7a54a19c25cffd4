"""Routing counts shared through the real Redis: two gateways' policies (each its own process's state) count a
breaker's failures, a target's budget and its latency average together, exchanging their counts in the
background (RedisRoutingSync, stepped here one exchange at a time); Redis unreachable or hung, each counts alone
again, at once, and nothing waits on it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.conftest import REDIS_URL
from tests.support.balancing import Harness, targets
from tests.support.tcp_proxy import TcpProxy
from tollway.adapters.redis.routing_sync import RedisRoutingSync
from tollway.gateway.balancing.state import TargetState


def pair(model: dict[str, Any], prefix: str, url: str = REDIS_URL) -> tuple[list[Harness], list[RedisRoutingSync]]:
    harnesses = [Harness(model), Harness(model)]
    syncs = [RedisRoutingSync(url, h.policy.exchange, h.policy.forget, prefix=prefix) for h in harnesses]
    return harnesses, syncs


async def exchange(*syncs: RedisRoutingSync) -> None:
    for sync in syncs:
        assert await sync.exchange_once(), "Redis answered"


def state(harness: Harness, provider: str) -> TargetState:
    return next(s for s in harness.policy.states() if s.key == (provider, "m"))


async def test_two_gateways_open_a_breaker_after_the_configured_failures_in_all(
    redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tollway.gateway.breaker")
    (one, two), syncs = pair(
        {"name": "smart", "breaker": {"failures": 4}, "targets": targets("a", "b", "c")}, redis_prefix
    )
    try:
        # told between failures: 2 on one, then 2 on two open it (each alone would need 4)
        one.attempt("a", "unreachable")
        one.attempt("a", "unreachable")
        await exchange(*syncs)
        two.attempt("a", "unreachable")
        assert "a" in two.order()
        two.attempt("a", "unreachable")
        assert "a" not in two.order()  # opened by two's own 4th failure of the fleet
        assert "a" in one.order()  # one learns the open through the shared moves (test_routing_share), not here

        # failing at the same time, neither told: 2 + 2, the breaker opens when the second tells its count
        one.attempt("b", "unreachable")
        one.attempt("b", "unreachable")
        two.attempt("b", "unreachable")
        two.attempt("b", "unreachable")
        await exchange(syncs[0])
        assert "b" in one.order()
        await exchange(syncs[1])
        assert "b" not in two.order()
        assert "breaker b/m open after 4 consecutive failures across the gateways" in caplog.text

        # a success on either restarts the fleet's count
        one.attempt("c", "unreachable")
        one.attempt("c", "unreachable")
        one.attempt("c", "unreachable")
        await exchange(*syncs)
        two.attempt("c", "ok")
        await exchange(syncs[1], syncs[0])
        one.attempt("c", "unreachable")
        two.attempt("c", "unreachable")
        await exchange(*syncs, *syncs)
        assert "c" in one.order()  # 2 since the success, not 5
        assert "c" in two.order()
        breaker = state(one, "c").breaker
        assert breaker is not None
        assert breaker.consecutive == 2
    finally:
        for sync in syncs:
            await sync.close()


async def test_two_gateways_take_a_targets_budget_together(redis_prefix: str) -> None:
    model = {
        "name": "smart",
        "targets": [
            {"provider": "a", "model": "m", "budget": {"requests_per_minute": 4}},
            {"provider": "c", "model": "m", "budget": {"tokens_per_minute": 1000}},
            *targets("b"),
        ],
    }
    (one, two), syncs = pair(model, redis_prefix)
    try:
        one.attempt("a")
        one.attempt("a")
        await exchange(*syncs)
        assert two.order()[0] == "a"  # 2 of 4 taken
        two.attempt("a")
        two.attempt("a")
        assert "a" not in two.order()  # 4 of 4 in all: two stops sending to `a` without being told
        assert "a" in one.order()  # one learns it once two has told its count
        await exchange(syncs[1], syncs[0])
        assert "a" not in one.order()

        one.policy.spent("c", "m", 600)
        await exchange(*syncs)
        two.policy.spent("c", "m", 500)
        assert "c" not in two.order()  # 1100 tokens of 1000 in the fleet
        await exchange(syncs[1], syncs[0])
        assert one.order() == ["b"]

        for harness in (one, two):  # the next minute starts from zero on both
            harness.later(60)
        await exchange(*syncs)
        assert one.order() == two.order() == ["a", "c", "b"]
    finally:
        for sync in syncs:
            await sync.close()


async def test_two_gateways_keep_one_latency_average_per_target(redis_prefix: str) -> None:
    model = {"name": "smart", "balance": {"strategy": "lowest_latency", "explore": 0}, "targets": targets("a", "b")}
    (one, two), syncs = pair(model, redis_prefix)
    try:
        one.attempt("a", total_s=1.0, ttfb_s=0.5)
        one.attempt("b", total_s=0.5, ttfb_s=0.1)
        assert two.order() == ["a", "b"]  # no sample on two: configured order
        await exchange(*syncs)
        assert two.order() == ["b", "a"]  # one's samples: `a` is the slow one
        assert state(two, "a").ewma_total == 1.0
        assert state(two, "a").ewma_ttfb == 0.5

        two.attempt("a", total_s=0.2, ttfb_s=0.1)  # both gateways' samples fold into one average
        await exchange(syncs[1], syncs[0])
        for harness in (one, two):
            assert state(harness, "a").ewma_total == pytest.approx(1.0 + 0.3 * (0.2 - 1.0))
        for _ in range(3):  # three samples in one exchange move it as three one after another
            one.attempt("a", total_s=0.1, ttfb_s=0.05)
        await exchange(syncs[0], syncs[1])
        expected = 0.76 + (1 - 0.7**3) * (0.1 - 0.76)
        assert state(two, "a").ewma_total == pytest.approx(expected)
        assert two.order() == ["a", "b"]  # `a` recovered: now the faster in the fleet's average
    finally:
        for sync in syncs:
            await sync.close()


async def test_redis_unreachable_or_hung_each_gateway_counts_alone_and_nothing_waits(
    redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tollway.gateway.routing_share")
    host, port = REDIS_URL.split("//")[1].split("/")[0].split(":")
    proxy = TcpProxy(host, int(port)).up()
    limited = {"provider": "a", "model": "m", "budget": {"requests_per_minute": 3}}
    one, two = (
        Harness({"name": "smart", "targets": [limited, *targets("b")]}),
        Harness({"name": "smart", "targets": [limited, *targets("b")]}),
    )
    near = RedisRoutingSync(REDIS_URL, one.policy.exchange, one.policy.forget, prefix=redis_prefix)
    far = RedisRoutingSync(
        f"redis://127.0.0.1:{proxy.port}/0", two.policy.exchange, two.policy.forget, prefix=redis_prefix
    )
    loop = asyncio.get_running_loop()
    try:
        one.attempt("a")
        one.attempt("a")
        await exchange(near, far)
        two.attempt("a")
        assert "a" not in two.order()
        budget = state(two, "a").budget
        assert budget is not None
        assert budget.others_requests == 2

        proxy.stall()  # Redis hung: the exchange gives up after its timeout
        started = loop.time()
        assert await far.exchange_once() is False
        assert loop.time() - started < 1.0
        assert far.up is False
        assert two.order() == ["a", "b"]  # its own count only: 1 of 3
        proxy.resume()
        proxy.down()  # Redis gone: refused at once
        assert await far.exchange_once() is False
        assert caplog.text.count("Redis unreachable, each gateway keeps its own budgets") == 1

        proxy.up()
        assert await far.exchange_once() is True
        assert far.up is True
        assert "shared through Redis again" in caplog.text
        assert "a" not in two.order()  # 3 of 3 in all again
    finally:
        await near.close()
        await far.close()
        proxy.close()
