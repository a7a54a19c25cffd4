"""Event ingest on SQL (EventWriter): each batch in one short write transaction, with the fewest round trips.

PostgreSQL: one pipelined exchange per batch — take the ingest advisory lock, read the stored copies
of the events already there and insert the others (one statement, which also records unseen
subjects), commit. SQLite: `BEGIN IMMEDIATE`, the stored copies looked up, the others inserted, commit.

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
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from tollway.adapters.sql.writer import GroupCommit, WriterConnection
from tollway.clock import Clock
from tollway.metering.events import Event, to_micros
from tollway.metering.ports import IngestStats

log = logging.getLogger("tollway.metering.store")

EventKey = tuple[str, str]  # (source, id)
EventRow = tuple[str, str, str, str, int, str, int]  # source, id, type, subject, time_us, data (JSON), key_hash
StoredCopy = tuple[str, str, int, str]  # type, subject, time_us, data (JSON text) of an event already stored
Prepared = tuple[EventRow, bool]  # a row, and whether its time was defaulted (the sender gave none)

INGEST_LOCK = 0x746F6C6C  # "toll": serializes event writers on PostgreSQL

# The stored events whose key_hash is one of the batch's are read first (one index probe per hash); those
# whose (source, id) is one of the batch's are its duplicates (the caller keeps only those), the batch's other
# events are inserted in its order. Event writers hold the advisory lock, so no other writer can store one of
# these keys in between: every event of the batch not among the stored ones is inserted, and only the stored
# copies come back (not a row per inserted event).
POSTGRES_INSERT = """
WITH batch AS (
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::text[], %b::int4[])
        WITH ORDINALITY AS b(source, id, type, subject, time_us, data, key_hash, n)
), stored AS (
    SELECT e.source, e.id, e.type, e.subject, e.time_us, e.data FROM events e WHERE e.key_hash = ANY(%b::int4[])
), inserted AS (
    INSERT INTO events (source, id, type, subject, time_us, stored_us, data, key_hash)
    SELECT source, id, type, subject, time_us, %s, data, key_hash FROM batch b
    WHERE NOT EXISTS (SELECT 1 FROM stored s WHERE s.source = b.source AND s.id = b.id) ORDER BY b.n
), subjects_added AS (
    INSERT INTO subjects (key, first_seen_us) SELECT unnest(%b::text[]), %s ON CONFLICT DO NOTHING
)
SELECT source, id, type, subject, time_us, data FROM stored
"""
# Keyed by schema too, so deployments sharing one database do not serialize each other. The rollup
# writers take the same lock statement with their own key (store.py). The ingest writer's lock statement also
# turns sequential scans off for its transaction (set_config(..., true) is SET LOCAL): a table that grew since
# it was last analyzed (a new deployment's first hours, a bulk load) has statistics that make
# `key_hash = ANY(...)` look cheaper as a sequential scan, which read every stored event for each batch (14 ms
# per 1,000-event batch at 50,000 stored, growing with the table). The insert is planned after this ran.
POSTGRES_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))"
POSTGRES_INGEST_LOCK = (
    "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema())), set_config('enable_seqscan', 'off', true)"
)

SQLITE_INSERT = (
    "INSERT INTO events (source, id, type, subject, time_us, stored_us, data, key_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SQLITE_KEYS_PER_LOOKUP = 500  # below SQLite's bound on host parameters
GROUP_COMMIT_MAX = 10_000  # events per shared ingest transaction
CHECKPOINT_EVENTS = 20_000  # SQLite: events between two WAL checkpoints by the ingest writer
KNOWN_SUBJECTS_MAX = 1_000_000


@dataclass
class BatchOutcome:
    """Which keys were stored by this batch, and the stored copies of those that were already there."""

    new_keys: set[EventKey] = field(default_factory=set)
    stored: dict[EventKey, StoredCopy] = field(default_factory=dict)


def write_postgres(
    connection: Any, rows: Sequence[EventRow], new_subjects: Sequence[str], ingested_us: int
) -> BatchOutcome:
    """Store `rows` on a psycopg connection (not in a transaction) and commit."""
    columns: list[list[Any]] = [list(column) for column in zip(*rows, strict=True)]
    outcome = BatchOutcome()
    with connection.pipeline():
        lock, insert = connection.cursor(), connection.cursor()
        lock.execute(POSTGRES_INGEST_LOCK, (INGEST_LOCK,))
        parameters = (*columns, columns[6], ingested_us, list(new_subjects), ingested_us)
        insert.execute(POSTGRES_INSERT, parameters)
        connection.commit()
        wanted = {(row[0], row[1]) for row in rows}
        for source, event_id, kind, subject, time_us, data in insert.fetchall():
            if (source, event_id) in wanted:  # not a key that only shares a hash with one of the batch's
                outcome.stored[(source, event_id)] = (kind, subject, int(time_us), data)
    outcome.new_keys = wanted - outcome.stored.keys()
    return outcome


def write_sqlite(
    connection: Any, rows: Sequence[EventRow], new_subjects: Sequence[str], ingested_us: int
) -> BatchOutcome:
    """Store `rows` on a sqlite3 connection and commit (rolls back and re-raises on error)."""
    cursor = connection.cursor()
    outcome = BatchOutcome()
    try:
        # Take the write lock up front (waiting out busy_timeout): a deferred transaction that reads first
        # and writes later can fail with SQLITE_BUSY_SNAPSHOT under contention.
        cursor.execute("BEGIN IMMEDIATE")
        _sqlite_stored(cursor, rows, outcome)
        fresh = [row for row in rows if (row[0], row[1]) not in outcome.stored]
        cursor.executemany(SQLITE_INSERT, [(s, i, t, subj, tu, ingested_us, d, h) for s, i, t, subj, tu, d, h in fresh])
        outcome.new_keys.update((row[0], row[1]) for row in fresh)
        if new_subjects:
            cursor.executemany(
                "INSERT OR IGNORE INTO subjects (key, first_seen_us) VALUES (?, ?)",
                [(name, ingested_us) for name in new_subjects],
            )
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        cursor.close()
    return outcome


def _sqlite_stored(cursor: Any, rows: Sequence[EventRow], outcome: BatchOutcome) -> None:
    """The stored copies of the events already there: `key_hash IN (...)` is a probe of its index per
    event; a row found counts only if its (source, id) is one of the batch's keys."""
    wanted = {(row[0], row[1]) for row in rows}
    hashes = [row[6] for row in rows]
    for offset in range(0, len(hashes), SQLITE_KEYS_PER_LOOKUP):
        chunk = hashes[offset : offset + SQLITE_KEYS_PER_LOOKUP]
        query = (
            "SELECT source, id, type, subject, time_us, data FROM events "
            f"WHERE key_hash IN ({', '.join('?' * len(chunk))})"
        )
        for source, event_id, kind, subject, time_us, data in cursor.execute(query, chunk):
            if (source, event_id) in wanted:
                outcome.stored[(source, event_id)] = (kind, subject, int(time_us), data)


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
        self._group_commit: GroupCommit[Prepared] = GroupCommit(
            self._ingest_batches, max_items=GROUP_COMMIT_MAX, after=None if self._postgres else self._after_ingest
        )

    async def insert(self, batch: Sequence[Event]) -> int:
        if not batch:
            return 0
        # Encoded in the caller's task: an event that cannot be encoded fails its own request, never the
        # transaction it would have shared with other callers' batches.
        return await self._group_commit.submit(_prepare(batch))

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

    def _ingest_batches(self, batches: list[Sequence[Prepared]]) -> list[int]:
        """Store several callers' batches in one transaction; how many of each caller's events were new.

        An event repeated within the group counts for the first caller that sent it."""
        ingested = to_micros(self._clock.now())
        first: dict[EventKey, EventRow] = {}
        defaulted: set[EventKey] = set()  # first copies whose time was defaulted
        repeats: list[Prepared] = []
        owners: list[list[EventKey]] = []
        for batch in batches:
            mine: list[EventKey] = []
            for row, time_defaulted in batch:
                key = (row[0], row[1])
                if key in first:
                    repeats.append((row, time_defaulted))
                else:
                    first[key] = row
                    if time_defaulted:
                        defaulted.add(key)
                    mine.append(key)
            owners.append(mine)
        rows = list(first.values())
        names = sorted({row[3] for row in rows} - self._known_subjects)
        write = write_postgres if self._postgres else write_sqlite
        outcome = self._connection.run(lambda driver: write(driver, rows, names, ingested))
        if len(self._known_subjects) > KNOWN_SUBJECTS_MAX:
            self._known_subjects.clear()
        self._known_subjects.update(names)
        conflicts = self._count_conflicts(outcome, first, defaulted, repeats)
        fresh = len(outcome.new_keys)
        self._stats.inserted_total += fresh
        self._stats.duplicates_total += len(rows) + len(repeats) - fresh - conflicts
        self._stats.conflicts_total += conflicts
        return [sum(1 for key in mine if key in outcome.new_keys) for mine in owners]

    def _count_conflicts(
        self,
        outcome: BatchOutcome,
        first: dict[EventKey, EventRow],
        defaulted: set[EventKey],
        repeats: list[Prepared],
    ) -> int:
        """Duplicates whose content differs from the copy that is kept: counted and logged, never merged.

        A copy whose time was defaulted (a retry of an event sent without one) is compared without its time."""
        conflicts = 0
        for key, kept in outcome.stored.items():
            if not _same_content(kept, first[key][2:6], with_time=key not in defaulted):
                conflicts += 1
                _log_conflict(key)
        for row, time_defaulted in repeats:
            key = (row[0], row[1])
            kept = outcome.stored.get(key) or first[key][2:6]
            if not _same_content(kept, row[2:6], with_time=not time_defaulted):
                conflicts += 1
                _log_conflict(key)
        return conflicts


def checkpoint_sqlite(connection: Any) -> None:
    """A passive checkpoint (never waits for readers or writers) on a sqlite3 connection."""
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _log_conflict(key: EventKey) -> None:
    log.warning("event %r from %r arrived again with different content; the first copy is kept", key[1], key[0])


def dumps(data: Any) -> str:
    return orjson.dumps(data).decode()


def _prepare(batch: Sequence[Event]) -> list[Prepared]:
    """The rows of a batch: an event time's microseconds computed once per distinct time (a batch's events
    share a few), the data's JSON encoded here."""
    micros: dict[datetime, int] = {}
    dumps = orjson.dumps
    prepared: list[Prepared] = []
    for event in batch:
        source, event_id, moment = event.source, event.id, event.time
        time_us = micros.get(moment)
        if time_us is None:
            time_us = micros[moment] = to_micros(moment)
        row = (
            source,
            event_id,
            event.type,
            event.subject,
            time_us,
            dumps(event.data).decode(),
            key_hash(source, event_id),
        )
        prepared.append((row, event.time_defaulted))
    return prepared


def key_hash(source: str, event_id: str) -> int:
    """CRC-32 of source then id (UTF-8), as a signed 32-bit integer: what migration 0020 stores for the events
    before it. It only narrows the duplicate lookup, the keys decide: a key shared by several events (one in
    ~4 billion) costs a row read, never a merge. (The CRC of the two texts one after the other is the CRC of
    their concatenation: one encode and one call.)"""
    value = zlib.crc32((source + event_id).encode())
    return value - 0x1_0000_0000 if value & 0x8000_0000 else value


def _same_content(kept: StoredCopy, incoming: StoredCopy, *, with_time: bool = True) -> bool:
    """Same type, subject, time (unless `with_time` is off) and data (as JSON values: key order and spacing do
    not matter)."""
    if kept[:2] != incoming[:2] or (with_time and kept[2] != incoming[2]):
        return False
    return kept[3] == incoming[3] or bool(orjson.loads(kept[3]) == orjson.loads(incoming[3]))
