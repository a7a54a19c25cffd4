"""Usage storage in a separate process: the journal is the hand-off between gateway and worker.

With `TOLLWAY_INGEST=external` the gateway only appends to its journal (`HandOffSink`) and closes
a segment every flush interval; `tollway worker` (`JournalIngester`) takes closed segments, and
segments of dead processes, stores their events, and deletes them. The database and its CPU cost
leave the gateway's process. Nothing is lost: a segment is deleted only after its events are
stored, a worker that dies leaves it for the next claim, and (source, id) deduplication makes a
second storing harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from tollway.errors import UnavailableError
from tollway.metering.events import Event
from tollway.metering.intents import CallIntent
from tollway.metering.journaling import JournalWriter
from tollway.metering.llm import LlmCall, call_record, llm_event_count
from tollway.metering.ports import EventStore
from tollway.metering.records import Replay, usage_count

log = logging.getLogger("tollway.metering.spool")

RETRY_MAX_S = 5.0
PARKED_S = 300.0  # after a failure that is not an outage (a bug): segments stay, retried this rarely


class HandOffJournal(Protocol):
    """The gateway side's journal (adapters/journal/file.py's FileJournal): append, and hand segments over."""

    def open(self) -> None: ...

    def append(self, data: bytes) -> None: ...

    def hand_off(self, carry: bytes = b"") -> bool:
        """Close the open segment for the worker to take, starting the next one with `carry` (intents of
        calls in flight); True if there was something to hand over."""
        ...

    def probe(self) -> None: ...

    def close(self) -> None: ...

    def oldest_unstored_age_s(self) -> float:
        """Seconds since the oldest record of this process's segments still on disk was written (0: none)."""
        ...


class Claimed(Protocol):
    """A journal segment this worker claimed: store its records, then `done()`; on failure `give_back()`."""

    records: list[bytes]
    final: bool  # its writer's last segment (the writer is gone): open intents in it were interrupted

    def done(self) -> None: ...

    def give_back(self) -> None: ...


class HandOffSink:
    """The gateway side: journal every call, hand a segment over every `interval_s`."""

    def __init__(self, journal: HandOffJournal, *, interval_s: float) -> None:
        self._journal = journal
        self.writer = JournalWriter(journal)
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._unhanded = 0

    @property
    def backlog(self) -> int:
        return self._unhanded

    def backlog_age_s(self) -> float:
        """Handed over is not stored: the oldest of this process's segments the worker has not yet deleted."""
        return self._journal.oldest_unstored_age_s()

    def emit(self, events: Sequence[Event]) -> None:
        self._journal.append(b"".join(event.to_json() + b"\n" for event in events))
        self._unhanded += len(events)

    def begin(self, intent: CallIntent) -> None:
        self.writer.begin(intent)

    def record_call(self, call: LlmCall) -> None:
        # A record the journal cannot take now is kept and written on the next hand-off (its intent,
        # carried meanwhile, covers a crash).
        self.writer.complete(call.request_id, call_record(call, newline=True))
        self._unhanded += llm_event_count(call)

    def end(self, request_id: str) -> None:
        self.writer.end(request_id)

    def probe(self) -> None:
        self.writer.probe()

    def _hand_off(self) -> bool:
        self.writer.retry()
        return self._journal.hand_off(self.writer.carry())

    async def start(self) -> None:
        self._journal.open()
        self._task = asyncio.create_task(self._run(), name="tollway-journal-hand-off")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            if self._hand_off():
                self._unhanded = 0

    async def halt(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def stop(self, timeout_s: float = 10.0) -> bool:
        await self.halt()
        self._hand_off()
        self._journal.close()
        self._unhanded = 0
        return True


class JournalIngester:
    """The worker side: store the events of closed journal segments, then delete the segments."""

    def __init__(
        self,
        store: EventStore,
        directory: Path,
        *,
        claim: Callable[[Path], Sequence[Claimed]],
        batch_size: int = 5000,
        interval_s: float = 0.25,
    ) -> None:
        self._store = store
        self._directory = directory
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._claim = claim
        self.stored_total = 0
        self.failures_total = 0
        self.internal_errors_total = 0
        self._replay = Replay()

    async def run_once(self) -> int:
        """Store what is ready now. Returns the number of events stored; raises if the store failed."""
        segments = list(await asyncio.to_thread(self._claim, self._directory))
        stored = 0
        group: list[Claimed] = []
        try:
            while segments:
                group = []
                items: list[Event | LlmCall] = []
                while segments and (not items or len(items) + len(segments[0].records) <= self._batch_size):
                    segment = segments.pop(0)
                    group.append(segment)
                    items.extend(self._replay.usage(segment.records, final=segment.final))
                # Calls go to the store as calls (one row each, no events built): batch_size counts records.
                for offset in range(0, len(items), self._batch_size):
                    await self._store.insert_usage(items[offset : offset + self._batch_size])
                for segment in group:
                    segment.done()
                count = usage_count(items)
                stored += count
                self.stored_total += count
        except BaseException:
            for segment in [*group, *segments]:
                segment.give_back()
            raise
        return stored

    @property
    def unreadable_records_total(self) -> int:
        return self._replay.unreadable

    @property
    def interrupted_total(self) -> int:
        """Calls stored from an intent their gateway did not see finish (it died while they ran)."""
        return self._replay.interrupted

    async def run(self, stop: asyncio.Event) -> None:
        """Store until `stop` is set, retrying with backoff while the store is unreachable."""
        delay = self._interval_s
        while not stop.is_set():
            try:
                await self.run_once()
                delay = self._interval_s
            except (UnavailableError, OSError) as exc:  # the store or the journal's disk: an outage
                self.failures_total += 1
                delay = min(max(delay * 2, 0.1), RETRY_MAX_S)
                log.warning("ingest failed, retrying in %.1fs: %s", delay, exc)
            except Exception:
                # A bug, not an outage: the segments were given back (nothing lost); try again rarely.
                self.failures_total += 1
                self.internal_errors_total += 1
                delay = PARKED_S
                log.exception("ingest failed on a bug; segments kept, retrying in %.0fs", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        try:
            await self.run_once()  # what was handed over during the last interval
        except UnavailableError as exc:
            log.warning("ingest at stop failed; the segments stay for the next start: %s", exc)
        except Exception:
            self.internal_errors_total += 1
            log.exception("ingest at stop failed on a bug; the segments stay for the next start")
