"""Event ingest on SQL (EventWriter): each batch in one short write transaction, with the fewest round trips.

Gateway calls arrive as their CloudEvents; each complete, regular call is stored as one compact row
(calls.py, migration 0021), everything else as plain events. The write transaction is in ingest_sql.py:
PostgreSQL, one pipelined exchange to lock and look up what is stored and one to insert and commit;
SQLite, `BEGIN IMMEDIATE`, the look-ups, the inserts, commit.

Duplicates are found by `key_hash` (migration 0020: a CRC-32 of (source, id), indexed, not unique) and
then told apart by the stored (source, id) themselves, so a hash shared by two keys never merges them:
detection is exact, and the index is a fifth (SQLite) to 40% (PostgreSQL) of the (source, id) unique
index it replaced.

Event writers are serialized (the advisory lock; SQLite's write lock), so sequence numbers commit in
order and a rollup watermark is a gap-free prefix. The functions here take the driver connection
(psycopg or sqlite3) and raise the driver's own errors; the store translates them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from tollway.adapters.sql.calls import CallRow, KnownShapes, Shape, call_row, compact, gateway_runs
from tollway.adapters.sql.event_keys import EventKey, EventRow, StoredCopy, key_hash
from tollway.adapters.sql.ingest_sql import POSTGRES_LOCK, BatchOutcome, Unit, write_postgres, write_sqlite
from tollway.adapters.sql.writer import GroupCommit, WriterConnection
from tollway.clock import Clock
from tollway.metering.events import Event, to_micros
from tollway.metering.llm import LlmCall, llm_call_events
from tollway.metering.ports import IngestStats

__all__ = ["POSTGRES_LOCK", "EventWriter", "checkpoint_sqlite", "key_hash"]

log = logging.getLogger("tollway.metering.store")

Prepared = tuple[EventRow, bool]  # a row, and whether its time was defaulted (the sender gave none)
Item = Prepared | CallRow  # a plain event, or a gateway call stored as one row

GROUP_COMMIT_MAX = 10_000  # events per shared ingest transaction
INLINE_MAX = 32  # SQLite: groups of at most this many events are written on the event loop (~0.1-0.5 ms)
CHECKPOINT_EVENTS = 20_000  # SQLite: events between two WAL checkpoints by the ingest writer
KNOWN_SUBJECTS_MAX = 1_000_000


class EventWriter:
    """The ingest path of SqlEventStore: rows from events, one transaction per group of concurrent
    batches (GroupCommit) on the writer's own connection, duplicates and conflicts counted."""

    def __init__(self, engine: Engine, clock: Clock, stats: IngestStats) -> None:
        self._clock = clock
        self._stats = stats
        self._postgres = engine.dialect.name == "postgresql"
        self._known_subjects: set[str] = set()  # stored subjects: no insert for them per batch
        self._connection = WriterConnection(engine)
        self._since_checkpoint = 0  # SQLite: events written since the writer last checkpointed
        self._shapes: dict[Shape, int] = {}  # llm_call_shapes ids (rows never change nor go)
        self._checked_shapes: KnownShapes = {}  # the callers' side (event loop): shapes checked for compaction
        self._group_commit: GroupCommit[Item] = GroupCommit(
            self._ingest_batches,
            max_items=GROUP_COMMIT_MAX,
            after=None if self._postgres else self._after_ingest,
            # SQLite: a small group written on the event loop when the write lock is free (writer.py)
            inline=None if self._postgres else self._ingest_now,
            inline_max=INLINE_MAX,
        )

    async def insert(self, batch: Sequence[Event]) -> int:
        if not batch:
            return 0
        # Encoded in the caller's task: an event that cannot be encoded fails its own request, never the
        # transaction it would have shared with other callers' batches.
        return await self._group_commit.submit(_prepare(batch, self._checked_shapes))

    async def insert_usage(self, batch: Sequence[Event | LlmCall]) -> int:
        """`insert` for events and calls: a call becomes its row straight (calls.call_row), or its events where
        it has none (failover attempts). Counts as the call's events would."""
        if not batch:
            return 0
        return await self._group_commit.submit(_prepare_usage(batch, self._checked_shapes))

    def close(self) -> None:
        self._connection.close()

    def _after_ingest(self, events: int) -> Callable[[], None] | None:
        """SQLite, after a group is answered (on the event loop): every CHECKPOINT_EVENTS events, the upkeep
        that copies the WAL into the database on the writer's own connection, between two writes (run in a
        thread by GroupCommit; the other groups need no thread hop). Left to SQLite's auto-checkpoint, it runs
        inside an ingest commit (a 1000-event commit: 6.2 ms on average instead of 2.0 ms); run from another
        connection while writes go on, it never finds the WAL fully copied, so the WAL never restarts and keeps
        growing (seen: 90 MB after 300k events)."""
        self._since_checkpoint += events
        if self._since_checkpoint < CHECKPOINT_EVENTS:
            return None
        self._since_checkpoint = 0
        return lambda: self._connection.run(checkpoint_sqlite)

    def _ingest_now(self, batches: list[Sequence[Item]]) -> list[int]:
        """`_ingest_batches` on the caller's thread without waiting (WriterBusy: nothing written, write it from a
        thread instead)."""
        return self._ingest_batches(batches, run=self._connection.run_now)

    def _ingest_batches(
        self, batches: list[Sequence[Item]], run: Callable[[Callable[[Any], BatchOutcome]], BatchOutcome] | None = None
    ) -> list[int]:
        """Store several callers' batches in one transaction; how many of each caller's events were new.

        An event repeated within the group counts for the first caller that sent it."""
        ingested = to_micros(self._clock.now())
        first: dict[EventKey, EventRow | CallRow] = {}  # a call's events: the call (its rows built if needed)
        defaulted: set[EventKey] = set()  # first copies whose time was defaulted
        repeats: list[Prepared] = []
        owners: list[list[EventKey]] = []
        units: list[Unit] = []
        subjects: set[str] = set()  # of the first copies
        for batch in batches:
            mine: list[EventKey] = []
            for item in batch:
                if isinstance(item, CallRow):
                    keys = item.keys
                    if not any(key in first for key in keys):
                        first.update(dict.fromkeys(keys, item))
                        mine.extend(keys)
                        units.append(item)
                        subjects.add(item.subject)
                        continue
                    plain: list[Prepared] = [(row, False) for row in item.rows]  # met in part already
                else:
                    plain = [item]
                for row, time_defaulted in plain:
                    key = (row[0], row[1])
                    if key in first:
                        repeats.append((row, time_defaulted))
                    else:
                        first[key] = row
                        if time_defaulted:
                            defaulted.add(key)
                        mine.append(key)
                        units.append(row)
                        subjects.add(row[3])
            owners.append(mine)
        names = sorted(subjects - self._known_subjects)
        write = write_postgres if self._postgres else write_sqlite
        shapes = self._shapes
        outcome = (run or self._connection.run)(lambda driver: write(driver, units, names, ingested, shapes))
        self._shapes.update(outcome.shapes)
        if len(self._known_subjects) > KNOWN_SUBJECTS_MAX:
            self._known_subjects.clear()
        self._known_subjects.update(names)
        conflicts = self._count_conflicts(outcome, first, defaulted, repeats)
        fresh = len(outcome.new_keys)
        self._stats.inserted_total += fresh
        self._stats.duplicates_total += len(first) + len(repeats) - fresh - conflicts
        self._stats.conflicts_total += conflicts
        if fresh == len(first):  # all new (the usual case): each caller's first copies
            return [len(mine) for mine in owners]
        return [sum(1 for key in mine if key in outcome.new_keys) for mine in owners]

    def _count_conflicts(
        self,
        outcome: BatchOutcome,
        first: dict[EventKey, EventRow | CallRow],
        defaulted: set[EventKey],
        repeats: list[Prepared],
    ) -> int:
        """Duplicates whose content differs from the copy that is kept: counted and logged, never merged.

        A copy whose time was defaulted (a retry of an event sent without one) is compared without its time."""
        conflicts = 0
        for key, kept in outcome.stored.items():
            if not _same_content(kept, _copy(first[key], key), with_time=key not in defaulted):
                conflicts += 1
                _log_conflict(key)
        for row, time_defaulted in repeats:
            key = (row[0], row[1])
            kept = outcome.stored.get(key) or _copy(first[key], key)
            if not _same_content(kept, row[2:6], with_time=not time_defaulted):
                conflicts += 1
                _log_conflict(key)
        return conflicts


def checkpoint_sqlite(connection: Any) -> None:
    """A passive checkpoint (never waits for readers or writers) on a sqlite3 connection."""
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _copy(kept: EventRow | CallRow, key: EventKey) -> StoredCopy:
    """The content (type, subject, time, data) of the first copy of `key` in a group: an event's own, or the
    derived event of a call (its rows built here: only for a duplicate)."""
    if isinstance(kept, CallRow):
        kept = next(row for row in kept.rows if row[1] == key[1])
    return (kept[2], kept[3], kept[4], kept[5])


def _log_conflict(key: EventKey) -> None:
    log.warning("event %r from %r arrived again with different content; the first copy is kept", key[1], key[0])


def _prepare(batch: Sequence[Event], known: KnownShapes) -> list[Item]:
    """The batch as rows; each run of one gateway call's events that compacts exactly becomes one CallRow.
    An event time's microseconds are computed once per distinct time (a batch's events share a few)."""
    encoded = [orjson.dumps(event.data).decode() for event in batch]
    micros: dict[datetime, int] = {}

    def plain(n: int) -> Prepared:
        event = batch[n]
        source, event_id, moment = event.source, event.id, event.time
        time_us = micros.get(moment)
        if time_us is None:
            time_us = micros[moment] = to_micros(moment)
        row = (source, event_id, event.type, event.subject, time_us, encoded[n], key_hash(source, event_id))
        return (row, event.time_defaulted)

    items: list[Item] = []
    done = 0
    for start, end in gateway_runs(batch):
        items.extend(plain(n) for n in range(done, start))
        call = compact(batch[start:end], encoded[start:end], known)
        if call is None:
            items.extend(plain(n) for n in range(start, end))
        else:
            items.append(call)
        done = end
    items.extend(plain(n) for n in range(done, len(batch)))
    return items


def _prepare_usage(batch: Sequence[Event | LlmCall], known: KnownShapes) -> list[Item]:
    items: list[Item] = []
    events: list[Event] = []  # a run of plain events (and calls without a row, as their events)
    for item in batch:
        if isinstance(item, LlmCall):
            row = call_row(item, known)
            if row is None:
                events.extend(llm_call_events(item))
                continue
            if events:
                items.extend(_prepare(events, known))
                events = []
            items.append(row)
        else:
            events.append(item)
    if events:
        items.extend(_prepare(events, known))
    return items


def _same_content(kept: StoredCopy, incoming: StoredCopy, *, with_time: bool = True) -> bool:
    """Same type, subject, time (unless `with_time` is off) and data (as JSON values: key order and spacing do
    not matter)."""
    if kept[:2] != incoming[:2] or (with_time and kept[2] != incoming[2]):
        return False
    return kept[3] == incoming[3] or bool(orjson.loads(kept[3]) == orjson.loads(incoming[3]))
