"""A flush interrupted while the store hangs keeps its batch: counted as backlog, stored by the next flush."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from tests.support.meter_events import token_event
from tollway.adapters.memory.journal import MemoryJournal
from tollway.adapters.memory.store import MemoryEventStore
from tollway.metering.events import Event
from tollway.metering.pipeline import UsagePipeline

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def event(n: int) -> Event:
    """Call `n`'s input tokens (`n` of them), as the gateway records a call: id `req<n>:input`."""
    return token_event(f"req{n}:input", "acme", T0, n, kind="input")


class HangingStore(MemoryEventStore):
    """Hangs on insert until `release` is set, as a database behind a dead network path."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.calls = 0
        self.cancelled = 0  # inserts cancelled while they hung
        self.called_again = asyncio.Event()

    async def insert_events(self, events: Sequence[Event]) -> int:
        self.calls += 1
        self.entered.set()
        if self.calls > 1:
            self.called_again.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return await super().insert_events(events)


async def test_cancelled_flush_keeps_its_batch_in_the_backlog_and_the_next_flush_stores_it() -> None:
    store = HangingStore()
    journal = MemoryJournal()
    pipeline = UsagePipeline(store, journal, interval_s=3600)
    journal.recover()
    pipeline.emit([event(1), event(2)])
    flush = asyncio.create_task(pipeline.flush())
    await store.entered.wait()
    assert pipeline.backlog == 2, "events in flight are still backlog"
    pipeline.emit([event(3)])
    assert pipeline.backlog == 3

    flush.cancel()  # what a graceful stop does to the flusher
    await asyncio.gather(flush, return_exceptions=True)
    assert store.cancelled == 1, "the flush was cancelled inside the store's insert"
    assert pipeline.backlog == 3
    assert len(journal.records) == 3, "nothing released"

    store.release.set()
    assert await pipeline.flush()
    assert pipeline.backlog == 0
    assert journal.records == []
    stored = await store.load_events("llm.tokens", None, None, None)
    assert sorted(e.id for e in stored) == ["req1:input", "req2:input", "req3:input"]


async def test_stop_during_a_hanging_flush_stores_everything_once_the_store_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = HangingStore()
    journal = MemoryJournal()
    pipeline = UsagePipeline(store, journal, interval_s=0.01)
    await pipeline.start()
    pipeline.emit([event(1), event(2)])
    await store.entered.wait()  # the background flusher hangs on the store
    stopping = asyncio.create_task(pipeline.stop(timeout_s=5))
    # The stop cancels the hanging flush, then flushes again itself: wait for that second insert, not a time.
    await asyncio.wait_for(store.called_again.wait(), timeout=5)
    assert (store.calls, store.cancelled) == (2, 1), "the background flush was cancelled mid-insert"
    assert "shutdown: interrupting a usage flush in progress" in caplog.text
    store.release.set()
    assert await stopping
    assert journal.records == []
    stored = await store.load_events("llm.tokens", None, None, None)
    assert sorted(e.id for e in stored) == ["req1:input", "req2:input"]
