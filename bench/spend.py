#!/usr/bin/env python3
"""What spend control costs the gateway, in process: enforcement off against on: a consumer with no
subscription (its calls only priced at provider cost for x-tollway-cost), a customer on a plan with a hard
metered entitlement (every call priced on the plan), and the same with a money budget on the customer and a
requests-per-minute rate limit on each consumer ("on"), with counters in memory and, when Redis answers on
127.0.0.1:6379, in Redis (keys under a prefix of this run's own, deleted afterwards).

bench/routing.py's harness: the gateway's ASGI app (auth, parse, route, admission, relay, usage record handed
to a sink that drops it) over an in-memory provider answering a chat completion at once; the setups alternate
in small batches, each measured as CPU time of this process (Redis's own CPU is not counted: with Redis, wall
time per request is printed too). Throughput of a CPU-bound gateway is the inverse of its CPU per request, so
"kept" = CPU off / CPU on.

    .venv/bin/python bench/spend.py
    .venv/bin/python bench/spend.py --rounds 40 --requests 2000
    .venv/bin/python bench/spend.py --concurrency 64   # 64 calls in flight at once (as bench/run.py's wrk -c 64)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from routing import Answering, Dropped, config, drive, drive_concurrently
from tollway.adapters.memory.counters import MemoryCounterStore
from tollway.billing.customers import Customer
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.features import Feature
from tollway.billing.plans import Phase, Plan, RateCard
from tollway.billing.pricing.model import UnitPrice, UsageTerms
from tollway.billing.subscriptions import Subscription
from tollway.clock import SystemClock
from tollway.gateway.admission import GatewayAdmission
from tollway.gateway.app import Gateway
from tollway.gateway.flow import Flow
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.providers.base import Provider
from tollway.gateway.relay import GatewayLimits
from tollway.metering.meters import BUILT_IN_METERS, Meter
from tollway.metering.running_totals import Filters
from tollway.runtime.heap import settle_heap
from tollway.spend.admission import SpendAdmission
from tollway.spend.budgets import Budget
from tollway.spend.ports import CounterStore
from tollway.spend.rate_limits import RateLimit
from tollway.spend.rules import SpendRules
from tollway.wiring.gateway import gateway_state

START = datetime.now(UTC) - timedelta(days=1)


class NoUsageYet:
    async def usage(
        self, meter: Meter, subjects: Sequence[str], filters: Filters, start: datetime, at: datetime
    ) -> Decimal:
        return Decimal(0)


def rules(*, budget: bool = True, subscribed: bool = True, rate: bool = True) -> SpendRules:
    features = [
        Feature("f1", "input-tokens", "Input", "llm_tokens", {"type": ("input",)}),
        Feature("f2", "output-tokens", "Output", "llm_tokens", {"type": ("output",)}),
    ]
    cards = (
        RateCard("input", "Input", "input-tokens", usage=UsageTerms(UnitPrice(Decimal("0.000003")))),
        RateCard(
            "output",
            "Output",
            "output-tokens",
            usage=UsageTerms(UnitPrice(Decimal("0.00001"))),
            entitlement=EntitlementTemplate("metered", limit=Decimal(10**12), hard=True),
        ),
    )
    plan = Plan("p1", "pro", 1, "Pro", "USD", "P1M", (Phase("default", "Default", cards),), status="published")
    customer = Customer("c1", "acme", "Acme", subjects=("bench-user",))
    subscription = Subscription("s1", "c1", "p1", "pro", 1, "USD", "P1M", START, START)
    budgets = [Budget("b1", "acme-monthly", "customer", "acme", "money", Decimal(10**9), "month")] if budget else []
    subscriptions = [subscription] if subscribed else []
    # a requests-per-minute limit on each consumer, high enough never to refuse
    rates = [RateLimit("r1", "each-rpm", "consumer", "*", "requests", Decimal(10**12), "minute")] if rate else []
    return SpendRules.build(1, [customer], subscriptions, [plan], features, BUILT_IN_METERS, budgets, rates)


def gateway(counters: CounterStore | None, **shape: bool) -> Gateway:
    loaded = config(False)
    providers: dict[str, Provider] = {name: Answering(name) for name in ("a", "b")}
    state = gateway_state(loaded, providers)
    clock = SystemClock()
    limits = GatewayLimits(max_body_bytes=1 << 20, drain_timeout_s=1.0)
    admission = None
    if counters is not None:
        snapshot = rules(**shape)
        spend = SpendAdmission(counters, NoUsageYet(), clock, lambda: snapshot)
        admission = GatewayAdmission(spend, lambda: state, clock)
    return Gateway(Flow(state, Dropped(), GatewayMetrics(), clock, limits, admission=admission))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1, help="calls in flight at once (default 1)")
    args = parser.parse_args()

    async def run(app: Gateway, requests: int) -> float:
        if args.concurrency > 1:
            return await drive_concurrently(app, requests, args.concurrency)
        return await drive(app, requests)

    apps = {
        "enforcement off": gateway(None),
        "no subscription (cost only)": gateway(
            MemoryCounterStore(SystemClock()), subscribed=False, budget=False, rate=False
        ),
        "entitlement, memory": gateway(MemoryCounterStore(SystemClock()), budget=False, rate=False),
        "on, counters in memory": gateway(MemoryCounterStore(SystemClock())),
    }
    redis_store = None
    prefix = f"tollway-bench:{os.getpid()}:"
    try:
        from tollway.adapters.redis.counters import RedisCounterStore

        redis_store = RedisCounterStore("redis://127.0.0.1:6379/0", SystemClock(), prefix=prefix, timeout_s=1.0)
        await redis_store.read(["probe"])
        apps["on, counters in Redis"] = gateway(redis_store)
    except Exception as exc:  # no Redis here: the memory figures only
        print(f"(no Redis: {exc.__class__.__name__})")
        redis_store = None
    for app in apps.values():
        await run(app, 2000)  # warm-up (and the counters' seeding)
    settle_heap()  # the garbage collector's settings `tollway serve` runs with (runtime/heap.py)
    samples: dict[str, list[float]] = {name: [] for name in apps}
    walls: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.rounds):
        for name, app in apps.items():
            gc.collect()
            began = time.perf_counter()
            samples[name].append(await run(app, args.requests))
            walls[name].append((time.perf_counter() - began) / args.requests)
    off = statistics.median(samples["enforcement off"])
    print(
        f"Gateway CPU per request in process ({args.rounds} alternating batches of {args.requests:,},"
        f" {args.concurrency} in flight):"
    )
    for name, values in samples.items():
        cpu, wall = statistics.median(values), statistics.median(walls[name])
        print(
            f"  {name:28s} CPU median {cpu * 1e6:6.1f} µs (best {min(values) * 1e6:6.1f}), wall {wall * 1e6:6.1f} µs,"
            f" throughput kept {off / cpu:6.1%}"
        )
    if redis_store is not None:
        await asyncio.sleep(0.2)  # background settlements
        import redis

        with redis.Redis.from_url("redis://127.0.0.1:6379/0") as direct:
            keys = list(direct.scan_iter(match=prefix + "*"))
            if keys:
                direct.delete(*keys)
        await redis_store.close()


if __name__ == "__main__":
    asyncio.run(main())
