"""Outages are retried with backoff; a bug (any other exception) is logged once with its traceback,
counted, and its batch kept, and is not retried in a hot loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tollway.adapters.memory.journal import MemoryJournal
from tollway.adapters.memory.store import MemoryEventStore
from tollway.metering.events import Event
from tollway.metering.pipeline import PARKED_S, UsagePipeline
from tollway.metering.spool import JournalIngester
from tollway.metering.worker import RollupWorker


def event(n: int) -> Event:
    return Event(
        id=f"e{n}",
        source="test",
        type="t",
        subject="acme",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        data={"n": n},
    )


class BuggyStore(MemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.buggy = True
        self.calls = 0

    async def insert_events(self, events: Sequence[Event]) -> int:
        self.calls += 1
        if self.buggy:
            raise KeyError("a bug in the adapter")
        return await super().insert_events(events)

    async def roll_up(self, limit: int = 50_000) -> int:
        self.calls += 1
        raise KeyError("a bug in the rollup")


async def test_pipeline_keeps_a_batch_that_hit_a_bug_and_parks_it(caplog: pytest.LogCaptureFixture) -> None:
    store, journal = BuggyStore(), MemoryJournal()
    pipeline = UsagePipeline(store, journal, batch_size=1, interval_s=60)
    await pipeline.start()
    with caplog.at_level(logging.ERROR, logger="tollway.metering.pipeline"):
        pipeline.emit([event(1)])  # a full batch wakes the flusher
        pipeline.emit([event(2)])
        for _ in range(20):
            await asyncio.sleep(0.01)
    assert store.calls == 1, "parked: full batches do not wake a retry per batch"
    assert pipeline.internal_errors_total == 1
    assert pipeline.backlog == 2
    assert len(journal.records) == 2, "the journal still holds the events"
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1
    assert "KeyError" in caplog.text
    assert PARKED_S >= 60
    store.buggy = False
    assert await pipeline.flush()
    assert sorted(e.id for e in store.events) == ["e1", "e2"]
    assert pipeline.backlog == 0
    await pipeline.stop()


async def test_pipeline_outage_is_not_counted_as_a_bug() -> None:
    store, journal = MemoryEventStore(), MemoryJournal()
    pipeline = UsagePipeline(store, journal, batch_size=10, interval_s=60)
    store.available = False
    pipeline.emit([event(1)])
    assert not await pipeline.flush()
    assert (pipeline.flush_failures_total, pipeline.internal_errors_total) == (1, 0)
    store.available = True
    assert await pipeline.flush()


async def test_rollup_worker_counts_a_bug_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    store = BuggyStore()
    worker = RollupWorker(store, interval_s=0.001)
    with caplog.at_level(logging.ERROR, logger="tollway.metering.worker"):
        worker.start()
        await asyncio.sleep(0.1)
        await worker.stop()
    assert store.calls == 1, "not retried in a loop"
    assert worker.internal_errors_total == 1
    assert len([r for r in caplog.records if r.exc_info is not None]) == 1


class Segment:
    def __init__(self, records: list[bytes], log: list[str]) -> None:
        self.records = records
        self.final = True
        self._log = log

    def done(self) -> None:
        self._log.append("done")

    def give_back(self) -> None:
        self._log.append("given back")


async def test_ingester_gives_segments_back_on_a_bug_and_waits(tmp_path: Path) -> None:
    store = BuggyStore()
    log: list[str] = []
    claims: list[int] = []

    def claim(_directory: Path) -> list[Segment]:
        claims.append(1)
        return [Segment([event(1).to_json()], log)]

    ingester = JournalIngester(store, tmp_path, claim=claim, interval_s=0.001)
    stop = asyncio.Event()
    task = asyncio.create_task(ingester.run(stop))
    await asyncio.sleep(0.1)
    stop.set()
    await task
    assert ingester.internal_errors_total == 2, "one in the loop, one in the final pass at stop"
    assert len(claims) == 2
    assert log == ["given back", "given back"]
