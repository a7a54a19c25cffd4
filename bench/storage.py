#!/usr/bin/env python3
"""CPU of the storage process per gateway call: journal segments in, stored and rolled up.

    PYTHONPATH=$PWD/src .venv/bin/python bench/storage.py --calls 12000 --segment 500
    PYTHONPATH=$PWD/src .venv/bin/python bench/storage.py --profile /tmp/storage.prof

Runs in one process what `tollway worker --child` does (`build_worker(storage_only=True)` on a fresh SQLite
database, the built-in meters synced): the gateway's journal sink writes `--segment` calls and hands the
segment over; the worker's ingester stores it and the rollup worker rolls up, as the child does once per
flush interval. Prints the process CPU (user + system) per call spent in the ingester and the rollups, and
each part. The code measured is the one on PYTHONPATH: to compare two checkouts, alternate runs with each
on it in the same shell loop.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tollway.adapters.journal.file import FileJournal
from tollway.adapters.sql.migrate import upgrade
from tollway.bootstrap import build_worker
from tollway.metering.llm import LlmCall, TokenPrice, TokenUsage
from tollway.metering.meters import BUILT_IN_METERS
from tollway.metering.spool import HandOffSink
from tollway.settings import Settings

PRICE = TokenPrice(input=Decimal("0.00000015"), output=Decimal("0.0000006"))


async def measure(calls: int, segment: int, directory: Path, profile: cProfile.Profile | None) -> tuple[float, float]:
    settings = Settings.from_env(
        {"TOLLWAY_DATABASE_URL": f"sqlite:///{directory}/bench.db", "TOLLWAY_JOURNAL_DIR": str(directory / "journal")}
    )
    worker = build_worker(settings, storage_only=True)
    await asyncio.to_thread(upgrade, worker.store.engine)
    await worker.store.sync_meters(list(BUILT_IN_METERS))  # what the gateway syncs at start: rolled up here
    sink = HandOffSink(FileJournal(Path(settings.journal_dir)), interval_s=3600)
    await sink.start()
    now = datetime.now(UTC)
    stored, rolled, n = 0.0, 0.0, 0
    while n < calls:
        for _ in range(segment):
            n += 1
            sink.record_call(
                LlmCall(
                    request_id=f"r{n}",
                    subject="bench-user",
                    time=now,
                    model="bench",
                    upstream_model="gpt-4o-mini",
                    provider="upstream",
                    route="/v1/chat/completions",
                    status_code=200,
                    streamed=False,
                    usage=TokenUsage(input=19, output=10, cache_read=2048),
                    price=PRICE,
                    duration_ms=1,
                )
            )
        sink._hand_off()
        started = time.process_time()
        if profile is not None:
            profile.enable()
        await worker.ingester.run_once()
        middle = time.process_time()
        await worker.rollups.run_once()
        if profile is not None:
            profile.disable()
        ended = time.process_time()
        stored, rolled = stored + middle - started, rolled + ended - middle
    await sink.halt()
    await worker.store.close()
    return stored / n * 1e6, rolled / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=12_000)
    parser.add_argument("--segment", type=int, default=500, help="calls per handed-over segment")
    parser.add_argument("--profile", help="write a cProfile of the measured part here")
    args = parser.parse_args()
    profile = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory() as directory:
        stored, rolled = asyncio.run(measure(args.calls, args.segment, Path(directory), profile))
    if profile is not None:
        profile.dump_stats(args.profile)
    print(
        f"segment={args.segment}: {stored + rolled:.1f} us CPU per call stored and rolled up "
        f"(stored {stored:.1f}, rolled up {rolled:.1f}; {args.calls} calls)"
    )


if __name__ == "__main__":
    main()
