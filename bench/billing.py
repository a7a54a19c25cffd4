#!/usr/bin/env python3
"""Billing benchmarks: invoice preview and entitlement value for one customer-month at 1M / 10M stored events.

    .venv/bin/python bench/billing.py load --size 1000000 --name bench_billing_1m
    .venv/bin/python bench/billing.py preview --name bench_billing_1m --runs 50
    .venv/bin/python bench/billing.py entitlement --name bench_billing_1m --runs 200 [--profile]
    .venv/bin/python bench/billing.py rollup --name bench_billing_10m     # after a load stopped part-way
    .venv/bin/python bench/billing.py drop --name bench_billing_1m

`load` stores LLM traffic for October 2026 in a PostgreSQL schema of its own (`--name`; `--db sqlite` uses
/tmp/tollway-bench-NAME.db) through the project's store (SqlEventStore.insert_events, batches of 10,000, the
events the gateway writes for each call: llm_call_events -> input, output, cache_read on one call in four,
and the llm.request event with the provider cost) and folds the rollups until the rollup worker would have
nothing left (store.roll_up until 0). Two measured customers, `acme-starter` and `acme-pro`, pay for three
subjects each with `--customer-calls` calls per customer spread uniformly over the month (the same at every
size); every other event belongs to 1000 other subjects (`other-0` .. `other-999`), so at 10M stored
events more than 99% of the table belongs to someone else and the preview must not read it.

`preview` (and `entitlement`) keep the loaded events and set up the catalog once through the catalog services:
features input-tokens, output-tokens (llm_tokens filtered by type) and provider-cost (llm_cost); plan
`starter` (unit prices on input and output tokens) and plan `pro` (49 USD in advance, graduated output
tiers with free quantity, discount and minimum, a metered hard entitlement, a package price on input, the
provider cost x 1.3); one monthly subscription per measured customer from 2026-10-01, and one more
customer, `other-7`, on starter over subject other-7 (its usage grows with the dataset: ~1/1000 of it).
Then it times InvoicePreview.preview(customer, at) (warm-up runs first) and prints p50 / p95 / min / max.

`entitlement` times EntitlementService.entitlement_value(acme-pro, output-tokens) and, separately, the time
spent awaiting each store call (catalog store and event store wrapped by a timing proxy), per method.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import io
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import func, select
from sqlalchemy import text as sql_text

from ingest import MONTH_S, MONTH_START, POSTGRES_URL, fresh_store
from tollway.adapters.sql.catalog import SqlCatalogStore
from tollway.adapters.sql.schema import meter_rollups
from tollway.adapters.sql.store import SqlEventStore
from tollway.billing.catalog import Catalog, CustomerService
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.invoicing.preview import InvoicePreview
from tollway.billing.invoicing.usage import MeteringUsageReader
from tollway.billing.plans import Phase, RateCard
from tollway.billing.ports import CatalogStore
from tollway.billing.pricing.model import (
    DynamicPrice,
    FlatPrice,
    PackagePrice,
    Tier,
    TieredPrice,
    UnitPrice,
    UsageTerms,
)
from tollway.clock import FrozenClock
from tollway.metering.aggregation import MeterQuery
from tollway.metering.events import Event, parse_time
from tollway.metering.llm import LlmCall, TokenPrice, TokenUsage, llm_call_events
from tollway.metering.query import plan_query
from tollway.metering.service import MeteringService, Store
from tollway.money import format_money
from tollway.wiring.catalog import build_catalog

MODELS = ("gpt-4o", "claude-sonnet-4-5", "gpt-4o-mini")
PROVIDERS = {"gpt-4o": "openai", "claude-sonnet-4-5": "anthropic", "gpt-4o-mini": "openai"}
PRICE = TokenPrice(Decimal("0.0000025"), Decimal("0.00001"), Decimal("0.00000125"))
MEASURED = {"acme-starter": "starter", "acme-pro": "pro"}
OTHERS = 1000
# A moment late in October, not on a minute boundary: the preview reads rollups plus a raw edge.
PREVIEW_AT = datetime(2026, 10, 24, 15, 30, 27, tzinfo=UTC)
BATCH = 10_000


def subjects_of(customer: str) -> tuple[str, ...]:
    return tuple(f"{customer}-{n}" for n in range(1, 4))


def make_calls(first: int, count: int, subjects: tuple[str, ...], rng: random.Random, prefix: str) -> list[Event]:
    """`count` gateway calls with times uniform over October (to the second), as the gateway stores them."""
    events: list[Event] = []
    for n in range(first, first + count):
        model = MODELS[n % 3]
        usage = TokenUsage(
            input=rng.randrange(1, 4000),
            output=rng.randrange(1, 2000),
            cache_read=rng.randrange(1, 1000) if n % 4 == 0 else 0,
            reasoning=0,
        )
        events.extend(
            llm_call_events(
                LlmCall(
                    request_id=f"{prefix}-{n}",
                    subject=subjects[rng.randrange(len(subjects))],
                    time=MONTH_START + timedelta(seconds=rng.randrange(MONTH_S)),
                    model=model,
                    upstream_model=model,
                    provider=PROVIDERS[model],
                    route="/v1/chat/completions",
                    status_code=200,
                    streamed=n % 2 == 0,
                    usage=usage,
                    price=PRICE,
                )
            )
        )
    return events


def open_store(db: str, name: str, *, reuse: bool) -> SqlEventStore:
    return fresh_store(db, name, reuse=reuse)


# Plain events plus those the gateway calls' rows derive (llm_calls: input, output, the request, cache types used).
STORED_EVENTS = (
    "SELECT (SELECT count(*) FROM events) + (SELECT COALESCE(sum(3 + CASE WHEN cache_read <> 0 THEN 1 ELSE 0 END"
    " + CASE WHEN cache_write <> 0 THEN 1 ELSE 0 END), 0) FROM llm_calls)"
)


def stored_events(store: SqlEventStore) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(sql_text(STORED_EVENTS)).scalar() or 0)


def rollup_reads(store: SqlEventStore, subjects: tuple[str, ...], at: datetime) -> str:
    """The rollup segments a month-to-`at` llm_tokens query of `subjects` reads, and how many buckets that is."""
    plan = plan_query(MeterQuery(start=MONTH_START, end=at, subjects=subjects), None)
    if plan.level_us is None:
        return "raw events (no rollup level)"
    names = {60_000_000: "minute", 3_600_000_000: "hour", 86_400_000_000: "day"}
    parts = []
    with store.engine.connect() as connection:
        for segment in plan.segments:
            conditions = [
                meter_rollups.c.meter == "llm_tokens",
                meter_rollups.c.level_us == segment.level_us,
                meter_rollups.c.subject.in_(subjects),
            ]
            if segment.start_us is not None:
                conditions.append(meter_rollups.c.bucket_us >= segment.start_us)
            if segment.end_us is not None:
                conditions.append(meter_rollups.c.bucket_us < segment.end_us)
            rows = connection.execute(select(func.count()).select_from(meter_rollups).where(*conditions)).scalar()
            parts.append(f"{names.get(segment.level_us, segment.level_us)} {rows:,}")
    return f"llm_tokens rollup rows per read: {' + '.join(parts)}; {len(plan.raw_ranges)} raw edge(s)"


def load_note() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


async def roll_up_all(store: SqlEventStore) -> None:
    while await store.roll_up(100_000):
        pass


async def load(db: str, name: str, size: int, customer_calls: int) -> None:
    store = open_store(db, name, reuse=False)
    metering = MeteringService(store, FrozenClock(PREVIEW_AT))
    await metering.sync_meters([])
    print(f"{load_note()} at start", flush=True)
    rng = random.Random(11)
    started = time.perf_counter()
    stored = 0
    for customer in MEASURED:
        for first in range(0, customer_calls, BATCH // 4):
            chunk = make_calls(first, min(BATCH // 4, customer_calls - first), subjects_of(customer), rng, customer)
            stored += await store.insert_events(chunk)
    measured = stored
    others = tuple(f"other-{n}" for n in range(OTHERS))
    call = 0
    pending: list[Event] = []
    next_roll = 1_000_000
    while stored < size:
        pending.extend(make_calls(call, BATCH // 3, others, rng, "other"))
        call += BATCH // 3
        chunk, pending = pending[: min(BATCH, size - stored)], pending[BATCH:]
        stored += await store.insert_events(chunk)
        if stored >= next_roll:  # as the rollup worker would, instead of one fold of everything at the end
            await roll_up_all(store)
            print(f"  {stored:,} stored, rolled up, {time.perf_counter() - started:.0f}s, {load_note()}", flush=True)
            next_roll += 1_000_000
    await roll_up_all(store)
    total = stored_events(store)
    print(
        f"loaded {total:,} events ({measured:,} for the measured customers) into {name} in "
        f"{time.perf_counter() - started:.0f}s, rolled up; {load_note()}",
        flush=True,
    )
    await store.close()


async def roll_up_only(db: str, name: str) -> None:
    """Bring a load that was stopped part-way to a consistent state: every stored event rolled up."""
    store = open_store(db, name, reuse=True)
    started = time.perf_counter()
    await roll_up_all(store)
    print(f"{name}: {stored_events(store):,} events, rolled up in {time.perf_counter() - started:.0f}s", flush=True)
    await store.close()


async def catalog_for(
    store: SqlEventStore, clock: FrozenClock, wrap: bool = False
) -> tuple[Catalog, MeteringService, Timer]:
    """The catalog service over the loaded database; features, plans and customers created on first use."""
    timer = Timer()
    catalog_store: CatalogStore = SqlCatalogStore(store.engine, clock)
    event_store: Store = store
    if wrap:
        catalog_store = cast(CatalogStore, TimedProxy(catalog_store, timer, "catalog"))
        event_store = cast(Store, TimedProxy(store, timer, "events"))
    customers = CustomerService(catalog_store, clock)
    metering = MeteringService(event_store, clock, customers=customers)
    catalog = build_catalog(catalog_store, metering, clock, customers=customers)
    if await catalog_store.get_customer("acme-pro") is None:
        await set_up_catalog(catalog)
    return catalog, metering, timer


async def set_up_catalog(catalog: Catalog) -> None:
    await catalog.features.create_feature(key="input-tokens", meter_slug="llm_tokens", filters={"type": ["input"]})
    await catalog.features.create_feature(key="output-tokens", meter_slug="llm_tokens", filters={"type": ["output"]})
    await catalog.features.create_feature(key="provider-cost", meter_slug="llm_cost")
    starter = await catalog.plans.create_plan(
        key="starter",
        name="Starter",
        currency="USD",
        billing_cadence="P1M",
        phases=(
            Phase(
                "default",
                "Default",
                (
                    RateCard(
                        key="input",
                        name="Input tokens",
                        feature_key="input-tokens",
                        usage=UsageTerms(UnitPrice(Decimal("0.000003"))),
                        billing_cadence="P1M",
                    ),
                    RateCard(
                        key="output",
                        name="Output tokens",
                        feature_key="output-tokens",
                        usage=UsageTerms(UnitPrice(Decimal("0.00001"))),
                        billing_cadence="P1M",
                    ),
                ),
            ),
        ),
    )
    pro = await catalog.plans.create_plan(
        key="pro",
        name="Pro",
        currency="USD",
        billing_cadence="P1M",
        phases=(
            Phase(
                "default",
                "Default",
                (
                    RateCard(
                        key="platform-fee", name="Platform fee", flat=FlatPrice(Decimal("49")), billing_cadence="P1M"
                    ),
                    RateCard(
                        key="output",
                        name="Output tokens",
                        feature_key="output-tokens",
                        usage=UsageTerms(
                            TieredPrice(
                                "graduated",
                                (
                                    Tier(Decimal("1000000"), Decimal("0.00001")),
                                    Tier(None, Decimal("0.000008")),
                                ),
                            ),
                            free_quantity=Decimal("100000"),
                            discount_percentage=Decimal("10"),
                            minimum_amount=Decimal("10"),
                        ),
                        billing_cadence="P1M",
                        entitlement=EntitlementTemplate("metered", limit=Decimal("5000000"), hard=True),
                    ),
                    RateCard(
                        key="input",
                        name="Input tokens",
                        feature_key="input-tokens",
                        usage=UsageTerms(PackagePrice(Decimal("1"), Decimal("100000"))),
                        billing_cadence="P1M",
                    ),
                    RateCard(
                        key="provider-cost",
                        name="Provider cost",
                        feature_key="provider-cost",
                        usage=UsageTerms(DynamicPrice(Decimal("1.3"))),
                        billing_cadence="P1M",
                    ),
                ),
            ),
        ),
    )
    for plan in (starter, pro):
        await catalog.plans.publish_plan(plan.id)
    for customer, plan_key in (*MEASURED.items(), ("other-7", "starter")):
        subjects = subjects_of(customer) if customer in MEASURED else (customer,)
        await catalog.customers.create_customer(key=customer, name=customer, subjects=subjects)
        await catalog.subscriptions.create_subscription(customer=customer, plan_key=plan_key, active_from=MONTH_START)


@dataclass
class Timer:
    """Seconds spent awaiting store calls, per 'store.method'."""

    spent: dict[str, list[float]] = field(default_factory=dict)
    enabled: bool = False

    def record(self, name: str, seconds: float) -> None:
        if self.enabled:
            self.spent.setdefault(name, []).append(seconds)

    def reset(self) -> None:
        self.spent.clear()


class TimedProxy:
    """Forwards every attribute; awaitable results of method calls are timed (wall time of the await)."""

    def __init__(self, target: object, timer: Timer, label: str) -> None:
        self._target = target
        self._timer = timer
        self._label = label

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute
        timer, label = self._timer, f"{self._label}.{name}"

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if not asyncio.iscoroutine(result):
                return result
            return timed(result, timer, label)

        return call


async def timed(awaitable: Awaitable[Any], timer: Timer, label: str) -> Any:
    started = time.perf_counter()
    try:
        return await awaitable
    finally:
        timer.record(label, time.perf_counter() - started)


def summary(timings_ms: list[float]) -> str:
    ordered = sorted(timings_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered):.2f} ms, p95 {p95:.2f} ms, "
        f"min {ordered[0]:.2f} ms, max {ordered[-1]:.2f} ms ({len(ordered)} runs)"
    )


@dataclass
class Runs:
    wall_ms: list[float]
    cpu_ms: list[float]  # this process's CPU time (all its threads): what the machine's load does not inflate
    result: Any

    def line(self) -> str:
        return f"wall {summary(self.wall_ms)}; CPU of this process p50 {statistics.median(self.cpu_ms):.2f} ms"


async def time_runs(work: Callable[[], Awaitable[Any]], runs: int, warmup: int = 3) -> Runs:
    result: Any = None
    for _ in range(warmup):
        result = await work()
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = await work()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return Runs(wall, cpu, result)


async def existing(db: str, name: str, *, analyze: bool = False) -> SqlEventStore:
    """The loaded database; with `analyze`, table statistics refreshed first (what autovacuum does on its own
    where it runs: the CI database here has autovacuum off, so a fresh load has no statistics at all)."""
    store = open_store(db, name, reuse=True)
    if stored_events(store) == 0:
        raise SystemExit(f"{name} holds no events: run `bench/billing.py load --name {name}` first")
    if analyze:
        started = time.perf_counter()
        with store.engine.connect() as connection:
            connection.execute(sql_text("ANALYZE"))
            connection.commit()
        print(f"ANALYZE in {time.perf_counter() - started:.1f}s", flush=True)
    return store


async def bench_preview(db: str, name: str, runs: int, at: datetime, analyze: bool) -> None:
    store = await existing(db, name, analyze=analyze)
    clock = FrozenClock(at)
    catalog, metering, _ = await catalog_for(store, clock)
    preview = InvoicePreview(catalog.contexts, MeteringUsageReader(metering), clock)
    total = stored_events(store)
    print(f"{name}: {total:,} events stored; preview at {at.isoformat()}; {load_note()}", flush=True)
    for customer in (*MEASURED, "other-7"):
        measured = await time_runs(functools.partial(preview.preview, customer, at), runs)
        invoice = measured.result
        lines = ", ".join(
            f"{line.rate_card_key} {line.charge.quantity}" for line in invoice.lines if line.charge is not None
        )
        print(
            f"| {db} | {total:,} | {customer} | {len(invoice.lines)} | "
            f"{format_money(invoice.total_minor, invoice.currency)} | {measured.line()} | {load_note()} |",
            flush=True,
        )
        subjects = subjects_of(customer) if customer in MEASURED else (customer,)
        print(f"    quantities: {lines}; reads {rollup_reads(store, subjects, at)}", flush=True)
    await store.close()


async def bench_entitlement(db: str, name: str, runs: int, profile: bool, at: datetime, analyze: bool) -> None:
    store = await existing(db, name, analyze=analyze)
    clock = FrozenClock(at)
    catalog, _, timer = await catalog_for(store, clock, wrap=True)
    total = stored_events(store)
    print(f"{name}: {total:,} events stored; entitlement at {at.isoformat()}; {load_note()}", flush=True)
    print(f"    reads {rollup_reads(store, subjects_of('acme-pro'), at)}", flush=True)

    async def value() -> Any:
        return await catalog.entitlements.entitlement_value("acme-pro", "output-tokens", at)

    measured = await time_runs(value, runs)
    print(f"entitlement_value: {measured.line()}; value: {measured.result}", flush=True)
    timer.enabled = True
    per_call: list[float] = []
    for _ in range(runs):
        timer.reset()
        await value()
        per_call.append(sum(sum(v) for v in timer.spent.values()) * 1000)
    print(f"store calls awaited per entitlement_value: {summary(per_call)}", flush=True)
    timer.reset()
    for _ in range(runs):
        await value()
    print("| store call | calls per value | p50 ms | mean ms |", flush=True)
    for label, seconds in sorted(timer.spent.items(), key=lambda item: -sum(item[1])):
        print(
            f"| {label} | {len(seconds) / runs:g} | {statistics.median(seconds) * 1000:.3f} | "
            f"{statistics.fmean(seconds) * 1000:.3f} |",
            flush=True,
        )
    timer.enabled = False
    await call_floor(store, runs)
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(runs):
            await value()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        print(out.getvalue(), flush=True)
    await store.close()


async def call_floor(store: SqlEventStore, runs: int) -> None:
    """What one store call costs before its query: the thread hop, the pool checkout (with its pre-ping), one
    round trip, the rollback when the connection goes back to the pool."""

    def checkout_select_one() -> None:
        with store.engine.connect() as connection:
            connection.execute(sql_text("SELECT 1"))

    def select_one(connection: Any) -> None:
        connection.execute(sql_text("SELECT 1"))

    hop = await time_runs(functools.partial(asyncio.to_thread, lambda: None), runs)
    checkout = await time_runs(functools.partial(asyncio.to_thread, checkout_select_one), runs)
    with store.engine.connect() as held:
        trip = await time_runs(functools.partial(asyncio.to_thread, select_one, held), runs)
    print(f"floor: asyncio.to_thread(no-op) {hop.line()}", flush=True)
    print(f"floor: to_thread + pool checkout (pre-ping) + SELECT 1 + return {checkout.line()}", flush=True)
    print(f"floor: to_thread + SELECT 1 on a held connection {trip.line()}", flush=True)


def drop(db: str, name: str) -> None:
    if db == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"/tmp/tollway-bench-{name}.db{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    print(f"dropped schema {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {name: sub.add_parser(name) for name in ("load", "rollup", "preview", "entitlement", "drop")}
    for command in commands.values():
        command.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
        command.add_argument("--name", default="bench_billing", help="the PostgreSQL schema / SQLite file")
    commands["load"].add_argument("--size", type=int, default=1_000_000, help="events stored in all")
    commands["load"].add_argument("--customer-calls", type=int, default=10_000, help="calls per measured customer")
    for name in ("preview", "entitlement"):
        commands[name].add_argument("--runs", type=int, default=50)
        commands[name].add_argument("--at", type=parse_time, default=PREVIEW_AT, help="the moment (RFC 3339)")
        commands[name].add_argument("--analyze", action="store_true", help="ANALYZE the database first")
    commands["entitlement"].add_argument("--profile", action="store_true", help="cProfile the timed calls")
    args = parser.parse_args()
    if args.command == "load":
        asyncio.run(load(args.db, args.name, args.size, args.customer_calls))
    elif args.command == "rollup":
        asyncio.run(roll_up_only(args.db, args.name))
    elif args.command == "preview":
        asyncio.run(bench_preview(args.db, args.name, args.runs, args.at, args.analyze))
    elif args.command == "entitlement":
        asyncio.run(bench_entitlement(args.db, args.name, args.runs, args.profile, args.at, args.analyze))
    else:
        drop(args.db, args.name)


if __name__ == "__main__":
    main()
