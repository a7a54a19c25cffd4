"""The usage pipeline: the gateway appends events; a background task stores them in batches.

`emit` is the only thing the request path does: write the records to the local journal (one
`write` system call) and keep them in memory. The flusher stores batches in the event store and
then deletes the journal segments they came from. A crash loses nothing the journal holds: the
next start replays it, and (source, id) deduplication makes the replay harmless. A store outage
loses nothing either: events stay in memory and in the journal until a flush succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from tollway.errors import UnavailableError
from tollway.metering.events import Event
from tollway.metering.intents import CallIntent
from tollway.metering.journaling import JournalWriter
from tollway.metering.llm import LlmCall, call_record, llm_event_count
from tollway.metering.ports import EventStore, Journal
from tollway.metering.records import Replay, usage_count

log = logging.getLogger("tollway.metering.pipeline")

RETRY_MIN_S = 0.1
RETRY_MAX_S = 5.0
# After a failure that is not an outage (a bug): the batch is kept (memory and journal) and tried again
# this rarely, or on the next start from the journal; never in a hot loop.
PARKED_S = 300.0
# Past this many unstored events (a long outage) the pipeline keeps none in memory: the journal holds them all.
MAX_MEMORY_EVENTS = 200_000


class UsagePipeline:
    def __init__(
        self,
        store: EventStore,
        journal: Journal,
        *,
        batch_size: int = 2000,
        interval_s: float = 0.25,
        now: Callable[[], float] = time.monotonic,
        max_memory_events: int = MAX_MEMORY_EVENTS,
    ) -> None:
        self._store = store
        self._journal = journal
        self.writer = JournalWriter(journal)
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._buffer: list[Event | LlmCall] = []  # calls are expanded to events when flushed
        self._buffered_events = 0
        self._mark: int | None = None  # journal mark of the batch being stored, kept across retries
        self._pending: list[Event | LlmCall] = []  # taken for a flush that failed; retried first
        self._pending_events = 0  # the events `_pending` stands for
        self._now = now
        self._max_memory_events = max_memory_events
        self._spilled = 0  # events journaled while spilled (not held in memory); > 0: read back from the journal
        self.spills_total = 0
        self._buffer_since: float | None = None  # when the oldest buffered item arrived (monotonic)
        self._pending_since: float | None = None  # the same for the batch being stored
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._retry_s = 0.0
        self._parked_at = 0.0
        self.flushed_total = 0
        self.flush_failures_total = 0
        self.internal_errors_total = 0  # failures that are not an outage: logged with their traceback
        self.replayed_total = 0
        self.interrupted_total = 0  # calls replayed from an intent their process did not see finish
        self.unreadable_records_total = 0

    @property
    def backlog(self) -> int:
        """Events emitted but not yet stored."""
        return self._buffered_events + self._pending_events + self._spilled

    @property
    def flushing(self) -> bool:
        """True while a flush is storing (or waiting on the store)."""
        return self._lock.locked()

    def backlog_age_s(self) -> float:
        """Seconds the oldest usage not yet stored has waited (0 when everything is stored)."""
        since = [t for t in (self._buffer_since, self._pending_since) if t is not None]
        return max(0.0, self._now() - min(since)) if since else 0.0

    def emit(self, events: Sequence[Event]) -> None:
        self._journal.append(b"".join(event.to_json() + b"\n" for event in events))
        if self._spilled:
            self._spilled += len(events)
            return
        self._buffer.extend(events)
        self._buffered(len(events))

    def begin(self, intent: CallIntent) -> None:
        self.writer.begin(intent)

    def record_call(self, call: LlmCall) -> None:
        # A record the journal cannot take now is still stored from memory; its intent covers a crash.
        self.writer.complete(call.request_id, call_record(call, newline=True))
        if self._spilled:  # journaled (or kept by the writer until the journal takes it): read back from there
            self._spilled += llm_event_count(call)
            return
        self._buffer.append(call)
        self._buffered(llm_event_count(call))

    def end(self, request_id: str) -> None:
        self.writer.end(request_id)

    def probe(self) -> None:
        self.writer.probe()

    def _buffered(self, events: int) -> None:
        if self._buffer_since is None:
            self._buffer_since = self._now()
        self._buffered_events += events
        if self.backlog > self._max_memory_events and not self._lock.locked():
            self._spill()
            return
        if self._buffered_events >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        """Adopt what a dead process left in the journal, try to store it, then start flushing."""
        replay = Replay()
        for segment in self._journal.recover():
            events = replay.usage(segment.records, final=segment.final)
            self._buffer.extend(events)
            count = usage_count(events)
            self._buffered_events += count
            self.replayed_total += count
            if events and self._buffer_since is None:
                self._buffer_since = self._now()
        self.unreadable_records_total += replay.unreadable
        self.interrupted_total += replay.interrupted
        if replay.interrupted:
            log.warning("journal: %d calls were in flight when their process died: interrupted", replay.interrupted)
        if self._buffer:
            log.warning("journal: replaying %d events left by a previous process", len(self._buffer))
            await self.flush()
        self._task = asyncio.create_task(self._run(), name="tollway-usage-flusher")

    def _spill(self) -> None:
        """The store is behind by more than `max_memory_events`: drop the in-memory copies; everything is in
        the journal (sealed segments, the open one, or the writer's retry list), read back from there."""
        self._spilled = max(1, self.backlog)
        self._buffer, self._buffered_events, self._pending, self._pending_events = [], 0, [], 0
        self._mark = None
        self.spills_total += 1
        log.warning(
            "usage backlog over %d events: kept in the journal only until the store takes it again",
            self._max_memory_events,
        )

    async def _flush_spilled(self) -> bool:
        """Store the journal's sealed segments one at a time (memory: one segment), releasing each."""
        self.writer.retry()
        try:
            self._journal.seal(self.writer.carry())
        except OSError as exc:
            log.error("journal: cannot seal a segment: %s", exc)
        sealed_at = self._spilled  # what arrives from now on is in the open segment: read on the next flush
        segments = self._journal.sealed()
        replay = Replay()
        try:
            for index, segment in enumerate(segments):
                events = replay.usage(await asyncio.to_thread(segment.read), final=segment.final)
                for offset in range(0, len(events), self._batch_size):
                    await self._store.insert_usage(events[offset : offset + self._batch_size])
                self.flushed_total += usage_count(events)
                if index + 1 == len(segments) or segments[index + 1].mark != segment.mark:
                    self._journal.release(segment.mark)
        except UnavailableError as exc:
            self.flush_failures_total += 1
            self._retry_s = min(max(self._retry_s * 2, RETRY_MIN_S), RETRY_MAX_S)
            log.warning("usage flush failed, the backlog stays in the journal: %s", exc)
            return False
        self.unreadable_records_total += replay.unreadable
        self.interrupted_total += replay.interrupted
        self._retry_s = 0.0
        self._spilled -= sealed_at
        if self._spilled:
            return True  # calls that ended while storing are in the open segment: the next flush reads them
        self._buffer_since = self._pending_since = None
        log.warning("usage backlog stored from the journal; buffering in memory again")
        return True

    async def flush(self) -> bool:
        """Store everything emitted so far. False if the store failed (events are kept for a retry)."""
        async with self._lock:
            if self._spilled:
                return await self._flush_spilled()
            if not self._buffer and not self._pending:
                return True
            # Seal once per batch, not once per retry: during a long outage new records keep going to
            # the one open segment instead of opening a file (and holding its descriptor) per attempt.
            if self._mark is None:
                self.writer.retry()  # usage records a full disk kept out of the journal
                try:
                    self._mark = self._journal.seal(self.writer.carry())
                except OSError as exc:
                    # Stored from memory all the same; the journal keeps every segment until a seal works.
                    log.error("journal: cannot seal a segment: %s", exc)
            mark = self._mark
            # The batch stays in `_pending` until it is stored: it counts as backlog while in flight, and
            # it is kept when the store fails or when the flush is cancelled (a graceful stop cancels the
            # flusher, then flushes what is left, this batch included).
            batch = self._pending + self._buffer  # calls stay calls: the store takes them as they are
            self._pending, self._pending_events = batch, self._pending_events + self._buffered_events
            self._buffer, self._buffered_events = [], 0
            since = [t for t in (self._pending_since, self._buffer_since) if t is not None]
            self._pending_since, self._buffer_since = (min(since) if since else None), None
            try:
                for offset in range(0, len(batch), self._batch_size):
                    await self._store.insert_usage(batch[offset : offset + self._batch_size])
            except UnavailableError as exc:
                self.flush_failures_total += 1
                self._retry_s = min(max(self._retry_s * 2, RETRY_MIN_S), RETRY_MAX_S)
                log.warning("usage flush failed, %d events kept for retry: %s", self._pending_events, exc)
                return False
            except Exception:
                self.flush_failures_total += 1
                self.internal_errors_total += 1
                self._retry_s = PARKED_S
                self._parked_at = asyncio.get_running_loop().time()
                log.exception(
                    "usage flush failed on a bug; %d events kept, retried in %.0fs", self._pending_events, PARKED_S
                )
                return False
            self.flushed_total += self._pending_events
            self._pending, self._pending_events = [], 0
            self._pending_since = None
            self._mark = None
            self._retry_s = 0.0
            if mark is not None:
                self._journal.release(mark)
                if not self._buffer:
                    # Nothing arrived while storing: the open segment holds only stored records (those a
                    # retry took after the batch's seal) and intents of calls in flight (carried), so it
                    # can go too.
                    with contextlib.suppress(OSError):
                        self._journal.release(self._journal.seal(self.writer.carry()))
            return True

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._retry_s or self._interval_s)
            self._wake.clear()
            if self._retry_s == PARKED_S:
                # Parked after a bug: a full buffer must not wake a retry (and a traceback) per batch.
                await asyncio.sleep(max(0.0, self._parked_at + PARKED_S - loop.time()))
            await self.flush()

    async def halt(self) -> None:
        """Stop the periodic flusher (a shutdown's first step): a flush that hangs on the store is interrupted
        at once rather than after the other components' shutdown, and its batch stays for `stop`'s flush."""
        if self._task is not None:
            if self.flushing:
                # A flush is storing (or hangs on the store): cancelled, its batch stays for the flush below.
                log.warning("shutdown: interrupting a usage flush in progress; the final flush stores its events")
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the flusher and store what is left, retrying until `timeout_s`. True if nothing is left."""
        await self.halt()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not await self.flush():
            if loop.time() >= deadline:
                log.error("shutdown: %d events not stored; the journal keeps them for the next start", self.backlog)
                break
            await asyncio.sleep(min(RETRY_MAX_S, max(0.0, deadline - loop.time()), self._retry_s or 0.1))
        self._journal.close()
        return self.backlog == 0
