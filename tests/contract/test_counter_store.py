"""One contract suite for spend counters: in memory and in Redis (a key prefix of the test's own)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.conftest import REDIS_URL
from tollway.adapters.memory.counters import MemoryCounterStore
from tollway.adapters.redis.counters import RedisCounterStore
from tollway.clock import FrozenClock
from tollway.spend.ports import Ask, Counter, CounterStore

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CounterStore]:
    if request.param == "memory":
        counters: CounterStore = MemoryCounterStore(FrozenClock(NOW))
    else:
        counters = RedisCounterStore(
            REDIS_URL, FrozenClock(NOW), prefix=request.getfixturevalue("redis_prefix"), timeout_s=2
        )
    yield counters
    await counters.close()


async def settled(store: CounterStore, key: str, expected: Counter) -> Counter | None:
    """The counter once background settlements reached it (Redis settles off the request path)."""
    found = None
    for _ in range(100):
        [found] = await store.read([key])
        if found == expected:
            break
        await asyncio.sleep(0.01)
    return found


async def test_unseeded_keys_are_named_and_seeding_is_set_if_absent(store: CounterStore) -> None:
    asks = [Ask("a", Decimal(3), Decimal(10), END), Ask("b", Decimal("0.25"), None, None)]
    assert (await store.reserve(asks)).missing == ("a", "b")
    await store.seed("a", Decimal(4), END)
    await store.seed("a", Decimal(400), END)  # a second seeding (another replica, a retry) changes nothing
    await store.seed("b", Decimal("1.5"), None)
    held = await store.reserve(asks)
    assert (held.held, held.counters) == (True, (Counter(Decimal(4), Decimal(0)), Counter(Decimal("1.5"), Decimal(0))))
    assert await store.read(["a", "b", "c"]) == [
        Counter(Decimal(4), Decimal(3)),
        Counter(Decimal("1.5"), Decimal("0.25")),
        None,
    ]


async def test_refuses_the_tightest_limit_and_holds_nothing(store: CounterStore) -> None:
    await store.seed("wide", Decimal(0), END)
    await store.seed("tight", Decimal(8), END)
    await store.seed("tighter", Decimal("9.5"), END)
    asks = [
        Ask("wide", Decimal(3), Decimal(100), END),
        Ask("tight", Decimal(3), Decimal(10), END),
        Ask("tighter", Decimal(3), Decimal(10), END),
    ]
    refused = await store.reserve(asks)
    assert (refused.held, refused.refused) == (False, 2)  # 0.5 left beats 2 left
    assert await store.read(["wide", "tight"]) == [Counter(Decimal(0), Decimal(0)), Counter(Decimal(8), Decimal(0))]


async def test_settle_and_release_and_reconcile(store: CounterStore) -> None:
    await store.seed("k", Decimal(10), END)
    ask = Ask("k", Decimal("0.123456789"), Decimal(100), END)
    assert (await store.reserve([ask, ask])).held
    store.settle([ask], [Decimal("0.1")])
    store.release([ask])
    assert await settled(store, "k", Counter(Decimal("10.1"), Decimal(0))) == Counter(Decimal("10.1"), Decimal(0))
    await store.raise_used("k", Decimal(9))  # never lowers
    await store.raise_used("k", Decimal(12))
    assert await store.read(["k"]) == [Counter(Decimal(12), Decimal(0))]


async def test_fifty_concurrent_reserves_hold_what_fits(store: CounterStore) -> None:
    await store.seed("burst", Decimal(0), END)
    ask = Ask("burst", Decimal(7), Decimal(70), END)
    outcomes = await asyncio.gather(*(store.reserve([ask]) for _ in range(50)))
    assert sum(outcome.held for outcome in outcomes) == 10


async def test_a_sliding_window_counts_the_previous_bucket_at_its_weight(store: CounterStore) -> None:
    def ask(bucket: int, amount: str, weight: int) -> Ask:
        return Ask(
            f"rl:x:{bucket}",
            Decimal(amount),
            Decimal(10),
            None,
            fresh_ttl_s=180,
            previous=f"rl:x:{bucket - 1}",
            weight=weight,
        )

    first = await store.reserve([ask(7, "6", 0)])  # a rate counter needs no seeding: it starts at 0
    assert (first.held, first.missing, first.counters) == (True, (), (Counter(Decimal(0), Decimal(0)),))
    store.settle([ask(7, "6", 0)], [Decimal(8)])  # held 6, used 8
    assert await settled(store, "rl:x:7", Counter(Decimal(8), Decimal(0))) == Counter(Decimal(8), Decimal(0))
    # the next bucket, a quarter in: 8 * 0.75 = 6 counted; 5 more do not fit in 10, 4 do
    refused = await store.reserve([ask(8, "5", 750_000)])
    assert (refused.held, refused.refused) == (False, 0)
    assert refused.counters == (Counter(Decimal(0), Decimal(0), Decimal(8)),)
    held = await store.reserve([ask(8, "4", 750_000)])
    assert held.held
    store.release([ask(8, "4", 750_000)])
    assert await settled(store, "rl:x:8", Counter(Decimal(0), Decimal(0))) == Counter(Decimal(0), Decimal(0))


async def test_reserve_now_answers_as_reserve_or_holds_nothing(store: CounterStore) -> None:
    await store.seed("now", Decimal(2), END)
    asks = [Ask("now", Decimal(3), Decimal(10), END), Ask("unseeded", Decimal(1), None, None)]
    first = store.reserve_now(asks)
    assert first is None or (first.held, first.missing) == (False, ("unseeded",))
    fits = [Ask("now", Decimal(3), Decimal(10), END)]
    held = store.reserve_now(fits)
    if held is None:  # the store must await (Redis): nothing was held
        assert await store.read(["now"]) == [Counter(Decimal(2), Decimal(0))]
        held = await store.reserve(fits)
    assert (held.held, held.counters) == (True, (Counter(Decimal(2), Decimal(0)),))
    refused = store.reserve_now([Ask("now", Decimal(6), Decimal(10), END)])  # 2 used + 3 held + 6 > 10
    assert refused is None or (refused.held, refused.refused) == (False, 0)
    assert await store.read(["now"]) == [Counter(Decimal(2), Decimal(3))]
