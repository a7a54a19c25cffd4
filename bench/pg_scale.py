#!/usr/bin/env python3
"""One PostgreSQL at scale: LLM token events loaded straight into the events table with generate_series (no HTTP,
no Python per event), folded into the meter rollups by the store's own rollup step (the worker's path), then the
customer-month meter queries timed, as bench/ingest.py's `query` does.

    createdb -h 127.0.0.1 -U postgres scale_bench
    TOLLWAY_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/scale_bench \\
        .venv/bin/python bench/pg_scale.py --sizes 1000000,10000000 --runs 10
    dropdb -h 127.0.0.1 -U postgres scale_bench

Events have the shape of bench/ingest.py's (`llm.tokens`, 1000 subjects, four token types, three models, times
to the second uniform over October 2026); each size is loaded on top of the previous one. For each size it
prints the load time (events/s inserted, with the table's three indexes and the dedup constraint), the rollup
time (events folded/s), the database's size on disk, and the three queries' p50 / min / max in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import psycopg

from ingest import MONTH_START, QUERIES  # the same month and queries as bench/ingest.py
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import SystemClock
from tollway.metering.service import MeteringService

URL = os.environ.get("TOLLWAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/scale_bench")
MONTH_START_US = int(MONTH_START.timestamp()) * 1_000_000
MONTH_S = 31 * 86_400

LOAD = """
INSERT INTO events (source, id, type, subject, time_us, ingested_us, data)
SELECT 'bench', 'scale-' || n || ':' || t.kind, 'llm.tokens',
       'customer-' || ((hashint4(n::int) & 2147483647) %% %(subjects)s),
       %(start_us)s::bigint + ((hashint8(n) & 2147483647) %% %(month_s)s)::bigint * 1000000, %(now_us)s::bigint,
       '{"tokens":' || (1 + (hashint4(n::int + 7) & 4095)) || ',"type":"' || t.kind || '","model":"'
       || (ARRAY['gpt-4o','claude-sonnet','demo'])[1 + n %% 3]
       || '","provider":"openai","status_code":200,"route":"/v1/chat/completions","streamed":false,"partial":false}'
FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS n
CROSS JOIN LATERAL (SELECT (ARRAY['input','output','cache_read','cache_write'])[1 + n %% 4] AS kind) AS t
"""

SUBJECTS = """
INSERT INTO subjects (key, first_seen_us)
SELECT 'customer-' || s, %(now_us)s FROM generate_series(0, %(subjects)s - 1) AS s ON CONFLICT DO NOTHING
"""


async def run(sizes: list[int], subjects: int, runs: int, chunk: int, roll_step: int, roll_budget_s: float) -> None:
    engine = create_sql_engine(URL)
    upgrade(engine)
    store = SqlEventStore(engine, SystemClock())
    service = MeteringService(store, SystemClock())
    await service.sync_meters([])
    with psycopg.connect(URL, autocommit=True) as db:
        stored = int(db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])  # type: ignore[index]
        now_us = int(time.time() * 1_000_000)
        db.execute(SUBJECTS, {"now_us": now_us, "subjects": subjects})
        for size in sizes:
            before = stored
            started = time.perf_counter()
            while stored < size:
                high = min(size, stored + chunk)
                params = {
                    "low": stored + 1,
                    "high": high,
                    "subjects": subjects,
                    "start_us": MONTH_START_US,
                    "month_s": MONTH_S,
                    "now_us": now_us,
                }
                db.execute(LOAD, params)  # one statement, one transaction
                stored = high
            load_s = time.perf_counter() - started
            started = time.perf_counter()
            folded = 0
            while time.perf_counter() - started < roll_budget_s and (step := await store.roll_up(roll_step)):
                folded += step
            roll_s = time.perf_counter() - started
            behind = int(db.execute("SELECT max(seq) - min(rolled_seq) FROM events, meters").fetchone()[0] or 0)  # type: ignore[index]
            db.execute("VACUUM ANALYZE events")
            db.execute("VACUUM ANALYZE meter_rollups")
            size_bytes = int(db.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
            rollup_rows = int(db.execute("SELECT count(*) FROM meter_rollups").fetchone()[0])  # type: ignore[index]
            rate = (size - before) / max(load_s, 1e-9)
            print(
                f"stored={stored:,}: inserted in {load_s:.0f}s ({rate:,.0f} events/s); {folded:,} folded"
                f" into rollups in {roll_s:.0f}s ({folded / max(roll_s, 1e-9):,.0f} events/s),"
                f" {behind:,} not yet folded;"
                f" {rollup_rows:,} rollup rows,"
                f" database {size_bytes / 2**30:.2f} GiB",
                flush=True,
            )
            for name, query in QUERIES.items():
                timings = []
                rows = []
                for _ in range(runs):
                    begun = time.perf_counter()
                    rows = await service.query("llm_tokens", query)
                    timings.append((time.perf_counter() - begun) * 1000)
                print(
                    f"| {stored:,} | {name} | {len(rows)} | {statistics.median(timings):.1f} | "
                    f"{min(timings):.1f} | {max(timings):.1f} |",
                    flush=True,
                )
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=1_000_000, help="events per INSERT statement")
    parser.add_argument("--roll-step", type=int, default=200_000, help="sequence numbers per rollup step")
    parser.add_argument(
        "--roll-budget-s",
        type=float,
        default=float("inf"),
        help="stop folding after this long (the queries then read the events not yet folded raw)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    asyncio.run(run(sizes, args.subjects, args.runs, args.chunk, args.roll_step, args.roll_budget_s))


if __name__ == "__main__":
    main()
