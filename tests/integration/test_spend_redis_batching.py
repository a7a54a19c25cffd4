"""Counters in Redis: the reserves of concurrent calls share one script, and each is decided exactly, in order.

Real Redis (a key prefix of the test's own). The script is wrapped to count how many are sent, and to hold one
at a gate (a script in flight) while the test cancels callers or queues more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import REDIS_URL
from tests.support.tcp_proxy import TcpProxy
from tollway.adapters.redis.counters import RedisCounterStore
from tollway.clock import FrozenClock
from tollway.spend.ports import Ask, Counter, CountersUnavailable, Reserved

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)
SEVEN = Ask("bud", Decimal(7), Decimal(70), END)  # room for 10


class Scripts:
    """Stands in for the store's reserve script: counts the scripts sent; while `gate` is clear, holds them."""

    def __init__(self, store: RedisCounterStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.script = store._reserve
        self.sent = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()  # a script is held at the gate
        monkeypatch.setattr(store, "_reserve", self)

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        self.sent += 1
        if not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        return await self.script(keys=keys, args=args)


@pytest.fixture
async def store(redis_prefix: str) -> AsyncIterator[RedisCounterStore]:
    counters = RedisCounterStore(REDIS_URL, FrozenClock(NOW), prefix=redis_prefix, timeout_s=2)
    await counters.seed("bud", Decimal(0), END)
    yield counters
    await counters.close()


async def test_a_burst_goes_in_one_script_and_admits_exactly_what_fits(
    store: RedisCounterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = Scripts(store, monkeypatch)
    outcomes = await asyncio.gather(*(store.reserve([SEVEN]) for _ in range(50)))
    assert [outcome.held for outcome in outcomes] == [True] * 10 + [False] * 40  # in order of arrival
    assert scripts.sent == 1  # one round trip for the 50 calls (one each without coalescing)
    # each call saw the counter as the calls before it in the script left it
    assert [outcome.counters[0].reserved for outcome in outcomes[:11]] == [Decimal(7 * i) for i in range(11)]
    assert outcomes[10].refused == 0
    assert await store.read(["bud"]) == [Counter(Decimal(0), Decimal(70))]


async def test_calls_that_come_while_a_script_is_in_flight_go_together_in_the_next(
    store: RedisCounterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = Scripts(store, monkeypatch)
    scripts.gate.clear()
    first = asyncio.create_task(store.reserve([SEVEN]))
    await scripts.waiting.wait()  # sent at once, alone
    later = [asyncio.create_task(store.reserve([SEVEN])) for _ in range(20)]
    store.settle([SEVEN], [Decimal(5)])  # carried by the next script, applied before its calls
    await asyncio.sleep(0.05)
    assert scripts.sent == 1
    scripts.gate.set()
    assert (await first).held
    held = [outcome.held for outcome in await asyncio.gather(*later)]
    assert scripts.sent == 2
    # the first call's 7 settled to 5 used: 9 of the 20 fit (5 used + 63 held <= 70)
    assert held == [True] * 9 + [False] * 11
    assert await store.read(["bud"]) == [Counter(Decimal(5), Decimal(63))]


async def test_two_stores_coalescing_at_once_share_one_limit(redis_prefix: str) -> None:
    stores = [RedisCounterStore(REDIS_URL, FrozenClock(NOW), prefix=redis_prefix, timeout_s=2) for _ in range(2)]
    try:
        await stores[0].seed("bud", Decimal(0), END)
        outcomes = await asyncio.gather(*(stores[n % 2].reserve([SEVEN]) for n in range(50)))
        assert sum(outcome.held for outcome in outcomes) == 10
    finally:
        for counters in stores:
            await counters.close()


async def test_a_cancelled_caller_loses_nobody_else_s_verdict_and_leaks_no_hold(
    store: RedisCounterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = Scripts(store, monkeypatch)
    scripts.gate.clear()
    first = asyncio.create_task(store.reserve([SEVEN]))
    await scripts.waiting.wait()
    queued = [asyncio.create_task(store.reserve([SEVEN])) for _ in range(3)]
    await asyncio.sleep(0)
    queued[1].cancel()  # before its script is sent: left out of it
    first.cancel()  # after: the script holds for it, and the hold is given back
    scripts.gate.set()
    outcomes = await asyncio.gather(*queued, return_exceptions=True)
    assert isinstance(outcomes[1], asyncio.CancelledError)
    assert [outcome.held for outcome in (outcomes[0], outcomes[2]) if isinstance(outcome, Reserved)] == [True, True]
    with pytest.raises(asyncio.CancelledError):
        await first
    assert scripts.sent == 2  # the release of the first call rode with the queued calls
    assert await store.read(["bud"]) == [Counter(Decimal(0), Decimal(14))]


async def test_a_stalled_redis_fails_each_waiter_within_its_own_timeout(redis_prefix: str) -> None:
    proxy = TcpProxy("127.0.0.1", 6379).up()
    counters = RedisCounterStore(
        f"redis://127.0.0.1:{proxy.port}/0", FrozenClock(NOW), prefix=redis_prefix, timeout_s=0.3
    )
    try:
        await counters.seed("bud", Decimal(0), END)
        assert (await counters.reserve([SEVEN])).held
        proxy.stall()
        began = time.monotonic()
        first = asyncio.create_task(counters.reserve([SEVEN]))  # sent, never answered
        await asyncio.sleep(0.1)
        queued = [asyncio.create_task(counters.reserve([SEVEN])) for _ in range(20)]  # behind it
        outcomes = await asyncio.gather(first, *queued, return_exceptions=True)
        assert all(isinstance(outcome, CountersUnavailable) for outcome in outcomes), outcomes
        assert time.monotonic() - began < 0.1 + 0.3 + 0.3  # each within 0.3 s of its start (and some slack)
        proxy.down()  # the stalled connection goes; Redis comes back
        proxy.resume()
        proxy.up()
        assert (await counters.reserve([SEVEN])).held
    finally:
        await counters.close()
        proxy.close()


async def test_redis_down_mid_batch_fails_every_waiter_at_once(redis_prefix: str) -> None:
    proxy = TcpProxy("127.0.0.1", 6379).up()
    counters = RedisCounterStore(
        f"redis://127.0.0.1:{proxy.port}/0", FrozenClock(NOW), prefix=redis_prefix, timeout_s=1
    )
    try:
        await counters.seed("bud", Decimal(0), END)
        proxy.stall()
        calls = [asyncio.create_task(counters.reserve([SEVEN])) for _ in range(20)]
        await asyncio.sleep(0.05)  # the script is on its way
        began = time.monotonic()
        proxy.down()
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(outcome, CountersUnavailable) for outcome in outcomes), outcomes
        assert time.monotonic() - began < 0.5  # the connection reset is seen at once, not at the timeout
        proxy.resume()
        proxy.up()
        assert (await counters.reserve([SEVEN])).held
    finally:
        await counters.close()
        proxy.close()
