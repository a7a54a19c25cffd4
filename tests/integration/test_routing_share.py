"""Routing state shared through Redis: a breaker one gateway opens (and a cool-down after a 429) is adopted by
another gateway's policy without any request of its own failing; without Redis each keeps its own, and nothing
waits on it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

import pytest

from tests.conftest import REDIS_URL
from tests.support.balancing import Harness, targets
from tollway.adapters.redis.routing import RedisRoutingShare
from tollway.auth_failures import AuthFailures
from tollway.errors import UnavailableError
from tollway.metrics import Counter

MODEL = {"name": "smart", "breaker": {"failures": 2, "cooldown_s": 30}, "targets": targets("a", "b")}


async def until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not _holds(condition):
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.01)


def cool_until(harness: Harness, provider: str) -> float:
    return next(state.cool_until for state in harness.policy.states() if state.key == (provider, "m"))


def _holds(condition: Callable[[], bool]) -> bool:
    try:
        return condition()
    except UnavailableError:  # every target refused, for now
        return False


async def test_a_breaker_opened_by_one_gateway_is_open_on_the_other_and_its_close_closes_both(
    redis_prefix: str,
) -> None:
    one, two = Harness(MODEL), Harness(MODEL)
    shares = [RedisRoutingShare(REDIS_URL, h.policy.adopt, prefix=redis_prefix) for h in (one, two)]
    for harness, share in zip((one, two), shares, strict=True):
        harness.policy.share = share.publish
        share.start()
    try:
        await until(lambda: all(s.up for s in shares))
        one.attempt("a", "unreachable")
        one.attempt("a", "unreachable")  # two failures: open on one
        assert one.order() == ["b"]
        await until(lambda: two.order() == ["b"])  # open on two, which never tried `a`
        one.attempt("b", "unreachable")
        one.attempt("b", "unreachable")
        await until(lambda: shares[1].adopted_total == 2)
        with pytest.raises(UnavailableError):
            two.order()  # every target open: refused at once on two as well

        # after the cool-down one gateway probes; its success closes the breaker everywhere
        for harness in (one, two):
            harness.clock.advance(timedelta(seconds=31))
        assert one.order()[0] == "a"  # one takes the probe (half-open: shared, so two does not probe `a`)
        await until(lambda: shares[1].adopted_total == 3)
        assert "a" not in two.order()
        one.attempt("a", "ok")
        await until(lambda: "a" in two.order())

        # a cool-down after a 429 with Retry-After is shared too
        two.attempt("a", "status", status=429, retry_after_s=20)
        cooled = two.clock.now().timestamp() + 20
        await until(lambda: cool_until(one, "a") == cooled)
        assert cool_until(two, "a") == cooled
    finally:
        for share in shares:
            await share.close()


async def test_without_redis_each_gateway_keeps_its_own_state_and_nothing_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tollway.gateway.routing_share")
    harness = Harness(MODEL)
    share = RedisRoutingShare("redis://127.0.0.1:1/0", harness.policy.adopt, prefix="tollway-test:none:")
    harness.policy.share = share.publish
    share.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        harness.attempt("a", "unreachable")
        harness.attempt("a", "unreachable")
        assert harness.order() == ["b"]  # the local breaker works as without Redis
        assert loop.time() - started < 0.05, "the request path never waits on Redis"
        await until(lambda: "Redis unreachable" in caplog.text)
        assert share.up is False
        assert caplog.text.count("Redis unreachable") == 1
    finally:
        await share.close()


async def test_failed_authentications_are_counted_across_gateways_and_block_the_address_on_all(
    redis_prefix: str,
) -> None:
    counters = [Counter("tollway_auth_failures_total", "failures", ("surface",)) for _ in range(2)]
    guards = [AuthFailures(counter, limit=4) for counter in counters]
    shares = [
        RedisRoutingShare(REDIS_URL, lambda *_: None, prefix=redis_prefix, auth_limit=4, block=guard.block)
        for guard in guards
    ]
    for guard, share in zip(guards, shares, strict=True):
        guard.share = share.auth_failed
        share.start()
    try:
        await until(lambda: all(s.up for s in shares))
        for guard in (guards[0], guards[1], guards[0], guards[1]):  # 2 + 2: under the limit on each alone
            guard.failed("203.0.113.7", "gateway")
        await until(lambda: all(g.retry_after("203.0.113.7") is not None for g in guards))
        assert all(1 <= (g.retry_after("203.0.113.7") or 0) <= 60 for g in guards)
        assert all(g.retry_after("203.0.113.8") is None for g in guards), "other addresses are not slowed"
    finally:
        for share in shares:
            await share.close()
