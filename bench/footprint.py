#!/usr/bin/env python3
"""Disk footprint: bytes of database storage per proxied request, at steady state.

    .venv/bin/python bench/footprint.py --db sqlite --calls 50000
    .venv/bin/python bench/footprint.py --db postgres --calls 50000

Stores `--calls` gateway calls the way the storage process does (each call expanded to its CloudEvents:
one `llm.tokens` per token type it used, one `llm.request`; 100 subjects, 3 models, one call per second
over the last `--calls` seconds; `--subjects 1 --per-second 1000` is close to bench/run.py's traffic),
rolls them up, and reports the bytes the database uses per call (events and llm_calls tables included).
SQLite: (page_count - freelist_count) x page_size of the file, after a WAL checkpoint; PostgreSQL: the
total relation size (table + indexes + TOAST) of events, subjects and rollups, after VACUUM. The
database is fresh, so the rollups are as they are after a day of such traffic, minute buckets
included. Then, with `--retention`, the same after deleting the raw events (TOLLWAY_EVENTS_RETENTION
past them): what stays per call once only the rollups are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sqlalchemy import text

from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.metering.llm import LlmCall, TokenPrice, TokenUsage, llm_call_events
from tollway.metering.service import MeteringService

POSTGRES_URL = os.environ.get("TOLLWAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 12, 1, tzinfo=UTC)
PRICE = TokenPrice(input=Decimal("0.0000025"), output=Decimal("0.00001"), cache_read=Decimal("0.00000125"))
TABLES = ("events", "llm_calls", "llm_call_shapes", "subjects", "meter_rollups", "meter_rollup_values", "meters")


def calls(count: int, rng: random.Random, subjects: int = 100, per_second: int = 1) -> list[LlmCall]:
    found = []
    for n in range(count):
        cached = rng.random() < 0.3
        found.append(
            LlmCall(
                request_id=f"req_{n:012d}{rng.getrandbits(48):012x}",
                subject=f"customer-{rng.randrange(subjects)}",
                time=NOW - timedelta(seconds=(count - n) / per_second),
                model=("gpt-4o", "gpt-4o-mini", "claude-sonnet")[n % 3],
                upstream_model="gpt-4o-2024-08-06",
                provider="openai",
                route="/v1/chat/completions",
                status_code=200,
                streamed=n % 2 == 0,
                usage=TokenUsage(
                    input=rng.randrange(10, 2000),
                    output=rng.randrange(1, 800),
                    cache_read=rng.randrange(0, 1024) if cached else 0,
                ),
                price=PRICE,
            )
        )
    return found


def used_bytes(store: SqlEventStore, postgres: bool) -> int:
    with store.engine.connect() as connection:
        if postgres:
            connection.commit()
            raw = connection.connection.driver_connection
            assert raw is not None
            raw.autocommit = True  # type: ignore[attr-defined]
            for table in TABLES:
                raw.execute(f"VACUUM ANALYZE {table}")  # type: ignore[attr-defined]
            raw.autocommit = False  # type: ignore[attr-defined]
            return sum(
                int(connection.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar() or 0) for t in TABLES
            )
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        pages = int(connection.exec_driver_sql("PRAGMA page_count").scalar() or 0)
        free = int(connection.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
        size = int(connection.exec_driver_sql("PRAGMA page_size").scalar() or 0)
        return (pages - free) * size


def breakdown(store: SqlEventStore, postgres: bool, count: int) -> None:
    """Bytes per call of each table and index that holds usage (dbstat on SQLite, pg_relation_size)."""
    with store.engine.connect() as connection:
        if postgres:
            query = (
                "SELECT c.relname, pg_relation_size(c.oid)"
                " + COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0)"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')"
            )
        else:
            query = "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"
        sizes = [(str(name), int(size)) for name, size in connection.exec_driver_sql(query)]
    for name, size in sorted(sizes, key=lambda item: -item[1]):
        if size >= count * 2:  # the relations usage fills; the others are a page or two
            print(f"|   {name} | | | {size / count:,.0f} | |")


def fresh(db: str) -> tuple[SqlEventStore, bool]:
    if db == "sqlite":
        path = Path("/tmp/tollway-bench-footprint.db")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        engine = create_sql_engine(f"sqlite:///{path}")
    else:
        engine = create_sql_engine(POSTGRES_URL + "?options=-csearch_path%3Dbench_footprint")
        with create_sql_engine(POSTGRES_URL).connect() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS bench_footprint CASCADE"))
            connection.execute(text("CREATE SCHEMA bench_footprint"))
            connection.commit()
    upgrade(engine)
    return SqlEventStore(engine, FrozenClock(NOW)), db == "postgres"


async def run(db: str, count: int, retention: bool, details: bool, subjects: int, per_second: int) -> None:
    store, postgres = fresh(db)
    await MeteringService(store, FrozenClock(NOW)).sync_meters([])
    base = used_bytes(store, postgres)
    made = calls(count, random.Random(5), subjects, per_second)
    events = [event for call in made for event in llm_call_events(call)]
    started = time.perf_counter()
    for offset in range(0, len(events), 5000):
        await store.insert_events(events[offset : offset + 5000])
    while await store.roll_up(50_000):
        pass
    elapsed = time.perf_counter() - started
    total = used_bytes(store, postgres) - base
    print(
        f"| {db} | {count:,} | {len(events) / count:.2f} | {total / count:,.0f} |"
        f" stored and rolled up in {elapsed:.1f}s |",
        flush=True,
    )
    if details:
        breakdown(store, postgres, count)
    if retention:
        while await store.expire_events(NOW + timedelta(days=1), 5000):
            pass
        kept = used_bytes(store, postgres) - base
        print(f"| {db}, raw events past retention deleted | {count:,} | 0 | {kept / count:,.0f} | rollups only |")
        if details:
            breakdown(store, postgres, count)
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--retention", action="store_true", help="then delete the raw events and measure again")
    parser.add_argument("--breakdown", action="store_true", help="bytes per call of each table and index")
    parser.add_argument("--subjects", type=int, default=100, help="consumers the calls are spread over")
    parser.add_argument("--per-second", type=int, default=1, help="calls per second (bench/run.py: one subject, ~1000)")
    args = parser.parse_args()
    print("| database | calls | events per call | bytes per call | note |\n|---|---:|---:|---:|---|")
    asyncio.run(run(args.db, args.calls, args.retention, args.breakdown, args.subjects, args.per_second))


if __name__ == "__main__":
    main()
