#!/usr/bin/env python3
"""Metering benchmark: event ingestion throughput and meter query latency at 1M / 10M stored events.

    .venv/bin/python bench/ingest.py ingest --db sqlite --events 100000
    .venv/bin/python bench/ingest.py ingest --db postgres --events 100000
    .venv/bin/python bench/ingest.py http --db sqlite --events 100000            # starts `tollway serve` itself
    .venv/bin/python bench/ingest.py http --db postgres --events 100000 --ingest external
    .venv/bin/python bench/ingest.py query --db postgres --sizes 1000000,10000000

`ingest` stores `--events` LLM token events through SqlEventStore.insert_events (the port the
gateway and POST /api/v1/events use: dedup on (source, id), subjects, one transaction per batch
or per group of concurrent batches), in batches of 100 and of 1000, from 1 and from 4 concurrent
producers; 10% of each batch repeats an already-stored event so the dedup path runs. Then it
times the rollups catching up (events folded per second).

`http` sends the same kind of events to POST /api/v1/events (batch content type) of a `tollway
serve` it starts on a fresh database (or of `--url`), from 1 and from 8 concurrent clients, in
batches of 100 and 1000 (`--batches 1`: single events). With `--ingest process` (the default, as
`make run` starts it) a storage process rolls up; `inline` rolls up in the server's own process;
`external` leaves rollups out (ingestion alone). Each
row gives the CPU per 1,000 events of the server, its storage process, the client and, on a local
PostgreSQL, the database backends serving the server and its storage process (application_name
tollway-bench-http; a backend that ended during the row is not counted).

`query` loads events spread over one month and 1000 subjects (through the same store path, in
batches of 10000) until the store holds each size, then times the llm_tokens query of one subject
for the month with DAY windows grouped by type and model (the customer-month an invoice reads).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import SystemClock
from tollway.metering.aggregation import MeterQuery, parse_zone
from tollway.metering.events import Event
from tollway.metering.meters import WindowSize
from tollway.metering.service import MeteringService

SRC = Path(__file__).resolve().parents[1] / "src"
POSTGRES_URL = os.environ.get("TOLLWAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)

# The customer-month meter queries timed by `query` (and by bench/pg_scale.py at scale).
QUERIES = {
    "DAY windows, UTC": MeterQuery(
        start=MONTH_START,
        end=MONTH_START + timedelta(days=31),
        window_size=WindowSize.DAY,
        subjects=("customer-7",),
        group_by=("type", "model"),
    ),
    "DAY windows, America/New_York": MeterQuery(
        start=datetime(2026, 10, 1, 4, tzinfo=UTC),
        end=datetime(2026, 11, 1, 4, tzinfo=UTC),
        window_size=WindowSize.DAY,
        window_tz=parse_zone("America/New_York"),
        subjects=("customer-7",),
        group_by=("type", "model"),
    ),
    "whole month, no window": MeterQuery(
        start=MONTH_START, end=MONTH_START + timedelta(days=31), subjects=("customer-7",), group_by=("type",)
    ),
}
MONTH_S = 31 * 86_400
MODELS = ("gpt-4o", "claude-sonnet", "demo")
TYPES = ("input", "output", "cache_read", "cache_write")
BATCH_TYPE = "application/cloudevents-batch+json"


def make_events(
    start: int,
    count: int,
    subjects: int,
    rng: random.Random,
    *,
    spread_s: int = MONTH_S,
    step_s: int = 1,
    origin: datetime = MONTH_START,
) -> list[Event]:
    """LLM token events; event times uniform over `spread_s` seconds from `origin`, on multiples of `step_s`."""
    found = []
    for n in range(start, start + count):
        token_type = TYPES[n % 4]
        offset = rng.randrange(spread_s)
        found.append(
            Event(
                id=f"bench-{n}:{token_type}",
                source="bench",
                type="llm.tokens",
                subject=f"customer-{rng.randrange(subjects)}",
                time=origin + timedelta(seconds=offset - offset % step_s),
                data={
                    "tokens": rng.randrange(1, 4000),
                    "type": token_type,
                    "model": MODELS[n % 3],
                    "provider": "openai",
                    "status_code": 200,
                    "route": "/v1/chat/completions",
                    "streamed": False,
                    "partial": False,
                },
            )
        )
    return found


def fresh_store(db: str, schema: str, *, reuse: bool = False) -> SqlEventStore:
    if db == "sqlite":
        path = Path(f"/tmp/tollway-bench-{schema}.db")
        for suffix in ("", "-wal", "-shm"):
            if not reuse:
                Path(str(path) + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            if not reuse:
                admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            admin.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    engine = create_sql_engine(url)
    upgrade(engine)
    return SqlEventStore(engine, SystemClock())


async def bench_ingest(db: str, total: int, producers: list[int]) -> None:
    """Store `total` new events through SqlEventStore.insert_events from 1 or more concurrent producers
    (each sending its share of the batches in order; concurrent batches may share a transaction),
    then time the rollups catching up (events/s folded)."""
    shapes = {
        # Event times as a live stream at 50k events/s would have them (what the gateway sends).
        "stream": max(1, total // 50_000),
        # Worst case for rollups: times uniform over a month, so almost every event opens its own minute bucket.
        "month": MONTH_S,
    }
    for shape, spread_s in shapes.items():
        for batch in (100, 1000):
            for level in producers:
                rng = random.Random(7)
                store = fresh_store(db, f"bench_ingest_{batch}")
                service = MeteringService(store, SystemClock())
                await service.sync_meters([])
                events = make_events(0, total, 1000, rng, spread_s=spread_s)
                duplicates = max(1, batch // 10)
                chunks = []
                for offset in range(0, total, batch - duplicates):
                    chunk = events[offset : offset + batch - duplicates]
                    if offset:
                        chunk = chunk + events[offset - duplicates : offset]  # already stored: the dedup path
                    chunks.append(chunk)
                sent = sum(len(c) for c in chunks)

                async def produce(mine: list[list[Event]], store: SqlEventStore = store) -> None:
                    for chunk in mine:
                        await store.insert_events(chunk)

                started = time.perf_counter()
                await asyncio.gather(*(produce(chunks[n::level]) for n in range(level)))
                elapsed = time.perf_counter() - started
                started = time.perf_counter()
                while await store.roll_up(50_000):
                    pass
                roll_s = time.perf_counter() - started
                print(
                    f"| {db} | {shape} | {batch} | {level} | {sent:,} ({total:,} new) | {sent / elapsed:,.0f} | "
                    f"{total / elapsed:,.0f} | {total / roll_s:,.0f} |",
                    flush=True,
                )
                await store.close()


async def bench_http(
    url: str,
    token: str,
    total: int,
    shape: str,
    concurrency: list[int],
    *,
    label: str,
    batches: tuple[int, ...],
    server_pid: int | None = None,
    backends: bool = False,
) -> None:
    """POST /api/v1/events (batch content type) from `concurrency` clients at once, each sending
    its share of the batches in sequence; events/s counts every event sent (all new). The client is
    aiohttp (a fraction of httpx's CPU per request, which matters when client and server share cores).

    With `server_pid` (the server the harness started), each row also gives the CPU time the server and
    its child processes (the storage process) spent per 1,000 events, from /proc: a figure that depends
    far less on what else the machine runs than events/s does. The client's own CPU is given apart, and with
    `backends` that of the PostgreSQL backends serving the server (backends_cpu_s)."""
    import aiohttp
    import orjson

    rng = random.Random(11)
    now = datetime.now(UTC).replace(microsecond=0)
    headers = {"Authorization": f"Bearer {token}"}
    for level in concurrency:
        for batch in batches:
            start = 10_000_000 + rng.randrange(10**12) * 10
            if shape == "stream":  # the last minute: what live producers send
                events = make_events(start, total, 1000, rng, spread_s=60, origin=now - timedelta(seconds=61))
            else:
                events = make_events(start, total, 1000, rng)
            if batch == 1:  # single events: the single-event content type
                bodies = [orjson.dumps(e.to_cloudevent()) for e in events]
            else:
                bodies = [
                    orjson.dumps([e.to_cloudevent() for e in events[i : i + batch]]) for i in range(0, total, batch)
                ]
            connector = aiohttp.TCPConnector(limit=level)
            async with aiohttp.ClientSession(url, headers=headers, connector=connector) as session:
                kind = {"Content-Type": "application/cloudevents+json" if batch == 1 else BATCH_TYPE}

                async def send(
                    mine: list[bytes], session: aiohttp.ClientSession = session, kind: dict[str, str] = kind
                ) -> None:
                    for body in mine:
                        async with session.post("/api/v1/events", data=body, headers=kind) as response:
                            if response.status != 204:
                                raise SystemExit(f"HTTP {response.status}: {await response.text()}")

                server_before = process_tree_cpu_s(server_pid) if server_pid else (0.0, 0.0)
                backends_before = backends_cpu_s() if backends else {}
                client_before = time.process_time()
                started = time.perf_counter()
                await asyncio.gather(*(send(bodies[n::level]) for n in range(level)))
                elapsed = time.perf_counter() - started
                client_ms = (time.process_time() - client_before) * 1e6 / total
                server_after = process_tree_cpu_s(server_pid) if server_pid else (0.0, 0.0)
                backends_after = backends_cpu_s() if backends else {}
                backend_s = sum(used - backends_before.get(pid, 0.0) for pid, used in backends_after.items())
                database = f"{backend_s * 1e6 / total:,.1f}" if backends_after else "—"
                server_ms, storage_ms = (
                    (a - b) * 1e6 / total for a, b in zip(server_after, server_before, strict=True)
                )
            cpu = f" {server_ms:,.1f} | {storage_ms:,.1f} | {client_ms:,.1f} | {database} |" if server_pid else ""
            print(f"| {label} | {shape} | {batch} | {level} | {total:,} | {total / elapsed:,.0f} |{cpu}", flush=True)


BENCH_APPLICATION = "tollway-bench-http"  # the application_name of the started server's PostgreSQL connections


def backends_cpu_s() -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving the started server, by pid, when the database runs on this
    machine (its processes readable under /proc); {} otherwise (SQLite, or a remote PostgreSQL)."""
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        pids = [
            row[0]
            for row in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (BENCH_APPLICATION,)
            )
        ]
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return {}
        found[pid] = (int(fields[11]) + int(fields[12])) / tick
    return found


def process_tree_cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of a running process, and of its running descendants, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    own, children, pending = 0.0, 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            used = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
        if current == pid:
            own += used
        else:
            children += used
    return own, children


async def bench_query(
    db: str, sizes: list[int], subjects: int, runs: int, step_s: int, reuse: bool, name: str = "bench_query"
) -> None:
    """With `reuse`, keep the events a previous run stored under `name` (and generate only what is missing)."""
    store = fresh_store(db, name, reuse=reuse)
    service = MeteringService(store, SystemClock())
    await service.sync_meters([])
    rng = random.Random(3)
    stored = 0
    if reuse:
        from sqlalchemy import text as sql_text

        with store.engine.connect() as connection:
            stored = int(connection.execute(sql_text("SELECT count(*) FROM events")).scalar() or 0)
    for size in sizes:
        started = time.perf_counter()
        while stored < size:
            count = min(10_000, size - stored)
            await store.insert_events(make_events(stored, count, subjects, rng, step_s=step_s))
            stored += count
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        while await store.roll_up(100_000):
            pass
        roll_s = time.perf_counter() - started
        print(f"stored={stored:,}: inserted in {load_s:.0f}s, rolled up in {roll_s:.0f}s", flush=True)
        for name, query in QUERIES.items():
            timings = []
            rows = []
            for _ in range(runs):
                started = time.perf_counter()
                rows = await service.query("llm_tokens", query)
                timings.append((time.perf_counter() - started) * 1000)
            print(
                f"| {db} | {stored:,} | {name} | {len(rows)} | {statistics.median(timings):.1f} | "
                f"{min(timings):.1f} | {max(timings):.1f} |",
                flush=True,
            )
    await store.close()


def serve_for_bench(db: str, ingest: str) -> tuple[str, subprocess.Popen[bytes], Path]:
    """A `tollway serve` on a fresh database and a free loopback port; returns (url, process, workdir)."""
    import socket
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="tollway-bench-http-"))
    if db == "sqlite":
        url = f"sqlite:///{workdir / 'tollway.db'}"
    else:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute('DROP SCHEMA IF EXISTS "bench_http" CASCADE')
            admin.execute('CREATE SCHEMA "bench_http"')
        url = f"{POSTGRES_URL}?options=-csearch_path%3Dbench_http&application_name={BENCH_APPLICATION}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "TOLLWAY_DATABASE_URL": url,
        "TOLLWAY_ADMIN_TOKEN": "bench",
        "TOLLWAY_INGEST": ingest,
        "TOLLWAY_JOURNAL_DIR": str(workdir / "journal"),
        "PYTHONPATH": str(SRC),  # this checkout's Tollway, whatever the venv has installed
    }
    log = (workdir / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tollway", "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1):
                return base, process, workdir
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"tollway serve did not become ready: {(workdir / 'serve.log').read_text()[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest")
    ingest.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ingest.add_argument("--events", type=int, default=100_000)
    ingest.add_argument("--producers", default="1,4", help="concurrent producers, e.g. 1,4")
    http = sub.add_parser("http")
    http.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite", help="database of the server it starts")
    http.add_argument(
        "--ingest", choices=["process", "inline", "external"], default="process", help="TOLLWAY_INGEST of that server"
    )
    http.add_argument("--url", help="use this running server instead of starting one")
    http.add_argument("--token", default="bench")
    http.add_argument("--events", type=int, default=100_000)
    http.add_argument("--shape", choices=["stream", "month"], default="stream")
    http.add_argument("--concurrency", default="1,8", help="clients sending at once, e.g. 1,8")
    http.add_argument("--batches", default="100,1000", help="events per request, e.g. 1,1000 (1: one event each)")
    query = sub.add_parser("query")
    query.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    query.add_argument("--sizes", default="1000000,10000000")
    query.add_argument("--subjects", type=int, default=1000)
    query.add_argument("--runs", type=int, default=20)
    query.add_argument("--step-s", type=int, default=1, help="event times on multiples of this many seconds")
    query.add_argument("--reuse", action="store_true", help="keep the events of the previous run")
    query.add_argument("--name", default="bench_query", help="the PostgreSQL schema / SQLite file to load into")
    args = parser.parse_args()
    if args.command == "ingest":
        asyncio.run(bench_ingest(args.db, args.events, [int(p) for p in args.producers.split(",")]))
    elif args.command == "http":
        levels = [int(c) for c in args.concurrency.split(",")]
        batches = tuple(int(b) for b in args.batches.split(","))
        if args.url:
            asyncio.run(
                bench_http(args.url, args.token, args.events, args.shape, levels, label=args.url, batches=batches)
            )
        else:
            url, process, workdir = serve_for_bench(args.db, args.ingest)
            try:
                label = f"{args.db}, {args.ingest}"
                print(
                    "| server | shape | events per request | clients | events | events/s | CPU ms per 1,000 events: "
                    "server | its storage process | client | database |",
                    flush=True,
                )
                asyncio.run(
                    bench_http(
                        url,
                        args.token,
                        args.events,
                        args.shape,
                        levels,
                        label=label,
                        batches=batches,
                        server_pid=process.pid,
                        backends=args.db == "postgres",
                    )
                )
            finally:
                process.terminate()
                process.wait(timeout=30)
                shutil.rmtree(workdir, ignore_errors=True)
    else:
        asyncio.run(
            bench_query(
                args.db,
                [int(s) for s in args.sizes.split(",")],
                args.subjects,
                args.runs,
                args.step_s,
                args.reuse,
                args.name,
            )
        )


if __name__ == "__main__":
    main()
