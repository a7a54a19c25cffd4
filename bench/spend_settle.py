"""Redis's CPU and this process's CPU per counter-store call (a reserve of 5 asks and its settlement), at 1 or
N calls in flight, against the Redis on 127.0.0.1:6379 (keys under a prefix of its own, deleted after).

    PYTHONPATH=$PWD/src .venv/bin/python bench/spend_settle.py 64
"""

from __future__ import annotations

import asyncio
import sys
import time
from decimal import Decimal

import redis

from tollway.adapters.redis.counters import RedisCounterStore
from tollway.clock import SystemClock
from tollway.spend.ports import Ask

CALLS = 6400
PREFIX = "tollway-bench-settle:"


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def main(concurrency: int) -> None:
    client = redis.Redis()
    store = RedisCounterStore("redis://127.0.0.1:6379/0", SystemClock(), prefix=PREFIX, timeout_s=2)
    asks = [Ask(f"k{i}", Decimal(1), Decimal(10**8), None) for i in range(5)]
    for ask in asks:
        await store.seed(ask.key, Decimal(0), None)

    async def caller(calls: int) -> None:
        for _ in range(calls):
            if not (await store.reserve(asks)).held:
                raise SystemExit("refused: the limit is far away")
            store.settle(asks, [Decimal(1)] * len(asks))

    await asyncio.gather(*(caller(10) for _ in range(concurrency)))  # warm-up
    redis_before, own_before = redis_cpu(client), time.process_time()
    await asyncio.gather(*(caller(CALLS // concurrency) for _ in range(concurrency)))
    await asyncio.sleep(0.1)  # the last settlements
    redis_us = 1e6 * (redis_cpu(client) - redis_before) / CALLS
    own_us = 1e6 * (time.process_time() - own_before) / CALLS
    print(f"c={concurrency}: Redis CPU {redis_us:.1f} us/call, this process {own_us:.1f} us/call")
    await store.close()
    for key in client.scan_iter(PREFIX + "*"):
        client.delete(key)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
