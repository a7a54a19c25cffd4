"""No phantom holds after a lost settlement: the counter store's scripts reach a real Redis through a proxy that
cuts the connection, stalls it, or forwards a script and drops its answer. A settlement (and the hold of a call
whose answer was lost) is applied exactly once once Redis answers again: `r` back to 0, `u` exact, and a later
call is admitted against the true remaining budget."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis

from tests.conftest import REDIS_URL
from tests.support.tcp_proxy import TcpProxy
from tollway.adapters.redis.counters import SCALE, RedisCounterStore
from tollway.clock import SystemClock
from tollway.spend.ports import Ask, CountersUnavailable

KEY = "bud:settle"
LIMIT = Decimal(25)


def ask(amount: int) -> Ask:
    return Ask(KEY, Decimal(amount), LIMIT, None)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    running = TcpProxy("127.0.0.1", 6379).up()
    yield running
    running.close()


def counter(prefix: str) -> tuple[Decimal, Decimal]:
    """(used, held) in units, read from Redis directly."""
    client = redis.Redis.from_url(REDIS_URL)
    used, held = client.hmget(prefix + KEY, "u", "r")
    client.close()
    return Decimal(int(used or 0)) / SCALE, Decimal(int(held or 0)) / SCALE


def units(used: int, held: int) -> tuple[Decimal, Decimal]:
    return Decimal(used), Decimal(held)


async def becomes(prefix: str, expected: tuple[Decimal, Decimal]) -> tuple[Decimal, Decimal]:
    """The counter (used, held) once it reads `expected`, or as it stands after 5 s."""
    for _ in range(100):
        found = counter(prefix)
        if found == expected:
            break
        await asyncio.sleep(0.05)
    return found


async def started(proxy: TcpProxy, prefix: str) -> RedisCounterStore:
    url = f"redis://127.0.0.1:{proxy.port}/0"
    store = RedisCounterStore(url, SystemClock(), prefix=prefix, timeout_s=0.3, settle_delay_s=0.01)
    await store.seed(KEY, Decimal(0), None)
    assert (await store.reserve([ask(10)])).held
    assert counter(prefix) == units(0, 10)
    return store


async def admits_the_true_remainder(store: RedisCounterStore, prefix: str) -> None:
    assert await becomes(prefix, units(4, 0)) == units(4, 0)
    await asyncio.sleep(0.3)  # and stays so: applied once, not once per re-send
    assert counter(prefix) == units(4, 0)
    assert (await store.reserve([ask(21)])).held  # 25 - 4: fits (a phantom hold of 10 would refuse it)
    store.settle([ask(21)], [Decimal(21)])
    assert await becomes(prefix, units(25, 0)) == units(25, 0)
    await store.close()
    assert store.dropped == 0


async def test_a_settlement_cut_off_is_applied_once_redis_is_back(proxy: TcpProxy, redis_prefix: str) -> None:
    store = await started(proxy, redis_prefix)
    proxy.down()
    store.settle([ask(10)], [Decimal(4)])
    await asyncio.sleep(0.5)  # its scripts fail (retried)
    assert counter(redis_prefix) == units(0, 10)
    proxy.up()
    await admits_the_true_remainder(store, redis_prefix)


async def test_a_lost_answer_applies_the_settlement_once_and_gives_the_hold_back(
    proxy: TcpProxy, redis_prefix: str
) -> None:
    store = await started(proxy, redis_prefix)
    proxy.mute()  # the script runs in Redis, its answer never comes back
    store.settle([ask(10)], [Decimal(4)])
    with pytest.raises(CountersUnavailable):
        await store.reserve([ask(10)])  # the settlement rides this call's script, which holds 10 more
    assert counter(redis_prefix) == units(4, 10)  # a hold nobody will settle: its caller was told Redis failed
    proxy.mute(False)
    await admits_the_true_remainder(store, redis_prefix)


async def test_a_stalled_script_that_runs_late_is_applied_once(proxy: TcpProxy, redis_prefix: str) -> None:
    store = await started(proxy, redis_prefix)
    proxy.stall()  # the script waits on the way; its sender gives up, then resolves it in a later script
    store.settle([ask(10)], [Decimal(4)])
    with pytest.raises(CountersUnavailable):
        await store.reserve([ask(10)])
    await asyncio.sleep(0.2)
    proxy.resume()  # the stalled scripts reach Redis, in whatever order
    await admits_the_true_remainder(store, redis_prefix)


async def test_unresolved_scripts_are_bounded_and_the_settlements_kept(proxy: TcpProxy, redis_prefix: str) -> None:
    url = f"redis://127.0.0.1:{proxy.port}/0"
    store = RedisCounterStore(url, SystemClock(), prefix=redis_prefix, timeout_s=0.3, max_unanswered=2)
    await store.seed(KEY, Decimal(0), None)
    assert (await store.reserve([ask(10)])).held
    proxy.down()
    store.settle([ask(10)], [Decimal(4)])
    await asyncio.sleep(0.2)  # sent on its own, failed: kept
    for _ in range(4):  # each call's script fails: kept up to the cap, then the newest are dropped
        with pytest.raises(CountersUnavailable):
            await store.reserve([ask(1)])
    assert len(store._unanswered) == 2  # the one carrying the settlement, and one call's
    assert store._unanswered[0].settling
    assert store.dropped == 3
    proxy.up()
    assert await becomes(redis_prefix, units(4, 0)) == units(4, 0)  # the settlement was never dropped
    assert store._unanswered == []
    await store.close()
