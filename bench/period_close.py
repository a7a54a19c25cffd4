#!/usr/bin/env python3
"""Period-close benchmark: how long the billing worker takes to invoice one billing period for N customers.

    .venv/bin/python bench/period_close.py --db postgres --customers 10000
    .venv/bin/python bench/period_close.py --db postgres --customers 10000 --workers 2
    .venv/bin/python bench/period_close.py --db sqlite --customers 1000

Loads a catalog straight through the catalog store (one feature on the built-in llm_tokens meter, one
published plan: a 30 USD monthly fee in advance + output tokens at 0.00001 USD), N customers with one
subject and one monthly subscription each from 2026-10-01, and `--events-per-customer` LLM token events
per customer over October (rolled up, as the rollup worker keeps them). Then, with the clock frozen:

- at 2026-10-01 00:01 the closer creates each subscription's opening invoice (the in-advance fee);
- at 2026-11-01 01:00 (period end + grace) it closes October: one closing invoice per subscription
  (usage read from rollups, November's fee in advance, late-usage re-rating of earlier invoices), each
  created and issued (numbered) in its own transaction — the figure this benchmark is for;
- a further run with nothing to do: the cost of an idle worker tick.

With `--workers K`, K closers (each its own engine and connection pool, as K processes would) run the
same rounds concurrently; the check at the end proves one invoice per billing key and gap-free numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import MONTH_START, fresh_store, make_events
from tollway.adapters.sql.catalog import SqlCatalogStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.invoices import SqlInvoiceStore
from tollway.billing.customers import Customer
from tollway.billing.features import Feature
from tollway.billing.invoicing.close import CloseReport, CloseSettings, PeriodCloser
from tollway.billing.invoicing.usage import MeteringUsageReader
from tollway.billing.plans import Phase, Plan, RateCard
from tollway.billing.pricing.model import FlatPrice, UnitPrice, UsageTerms
from tollway.billing.subscriptions import Subscription
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService

OPENING_AT = MONTH_START + timedelta(minutes=1)
CLOSE_AT = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)


async def load_catalog(catalog: SqlCatalogStore, customers: int) -> None:
    feature = Feature(
        id="feat-output",
        key="output-tokens",
        name="output tokens",
        meter_slug="llm_tokens",
        filters={"type": ("output",)},
    )
    await catalog.insert_feature(feature)
    cards = (
        RateCard(key="platform", name="Platform fee", flat=FlatPrice(Decimal("30")), billing_cadence="P1M"),
        RateCard(
            key="output",
            name="Output tokens",
            feature_key="output-tokens",
            usage=UsageTerms(UnitPrice(Decimal("0.00001"))),
            billing_cadence="P1M",
        ),
    )
    plan = Plan(
        id="plan-basic-1",
        key="basic",
        version=1,
        name="Basic",
        currency="USD",
        billing_cadence="P1M",
        phases=(Phase("default", "Default", cards),),
        status="published",
        published_at=MONTH_START,
    )
    await catalog.insert_plan(plan)

    async def add(n: int) -> None:
        customer = Customer(id=f"cus-{n:06d}", key=f"customer-{n}", name=f"Customer {n}", subjects=(f"customer-{n}",))
        await catalog.insert_customer(customer)
        await catalog.insert_subscription(
            Subscription(
                id=f"sub-{n:06d}",
                customer_id=customer.id,
                plan_id=plan.id,
                plan_key=plan.key,
                plan_version=1,
                currency="USD",
                billing_cadence="P1M",
                billing_anchor=MONTH_START,
                active_from=MONTH_START,
            )
        )

    for start in range(0, customers, 64):
        await asyncio.gather(*(add(n) for n in range(start, min(start + 64, customers))))


async def timed_round(closers: list[PeriodCloser]) -> tuple[float, list[CloseReport]]:
    started = time.perf_counter()
    reports = await asyncio.gather(*(closer.run_once() for closer in closers))
    return time.perf_counter() - started, list(reports)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events-per-customer", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    events = fresh_store(args.db, "tollway_bench_close")
    url = events.engine.url.render_as_string(hide_password=False)
    clock = FrozenClock(OPENING_AT)
    metering = MeteringService(events, clock)
    await metering.sync_meters([])
    catalog = SqlCatalogStore(events.engine, clock)
    started = time.perf_counter()
    await load_catalog(catalog, args.customers)
    print(f"catalog: {args.customers} customers + subscriptions in {time.perf_counter() - started:.1f}s")
    total = args.customers * args.events_per_customer
    rng = random.Random(7)
    started = time.perf_counter()
    for start in range(0, total, 10_000):
        await events.insert_events(make_events(start, min(10_000, total - start), args.customers, rng))
    while await events.roll_up(50_000):
        pass
    print(f"events: {total} over October, stored and rolled up in {time.perf_counter() - started:.1f}s")

    engines = [events.engine] + [create_sql_engine(url) for _ in range(args.workers - 1)]
    closers = [
        PeriodCloser(
            store=SqlInvoiceStore(engine, clock),
            catalog=SqlCatalogStore(engine, clock),
            reader=MeteringUsageReader(metering),
            clock=clock,
            settings=CloseSettings(),
            owner=f"bench-{n}",
        )
        for n, engine in enumerate(engines)
    ]
    elapsed, reports = await timed_round(closers)
    opened = sum(len(r.created) for r in reports)
    print(f"opening invoices: {opened} in {elapsed:.2f}s ({opened / elapsed:.0f}/s)")
    clock.set(CLOSE_AT)
    elapsed, reports = await timed_round(closers)
    closed = sum(len(r.created) for r in reports)
    print(
        f"close October ({args.workers} worker{'s' if args.workers > 1 else ''}): {closed} invoices in "
        f"{elapsed:.2f}s ({closed / elapsed:.0f}/s, {1000 * elapsed / max(closed, 1):.2f} ms each)"
    )
    elapsed, reports = await timed_round(closers)
    print(f"idle tick (nothing due): {elapsed:.2f}s, {sum(len(r.created) for r in reports)} invoices")
    clock.set(CLOSE_AT + timedelta(days=30))
    elapsed, reports = await timed_round(closers)
    closed = sum(len(r.created) for r in reports)
    print(
        f"close November (re-rates October for late usage): {closed} invoices in {elapsed:.2f}s "
        f"({closed / elapsed:.0f}/s, {1000 * elapsed / max(closed, 1):.2f} ms each)"
    )

    store = SqlInvoiceStore(events.engine, clock)
    stored = await store.list_invoices()
    keys = [i.billing_key for i in stored]
    numbers = sorted(i.number or "" for i in stored)
    assert len(keys) == len(set(keys)) == 3 * args.customers, (len(keys), len(set(keys)))
    assert numbers == [f"TW-2026-{n:06d}" for n in range(1, len(stored) + 1)], "numbers with gaps"
    print(f"check: {len(stored)} invoices, one per billing key, numbers TW-2026-000001..{len(stored):06d}")
    for engine in engines:
        engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
