"""The write transaction of event ingest (EventWriter, ingest.py): plain events and compact call rows.

Each batch: take the writers' lock (PostgreSQL: an advisory lock; SQLite: `BEGIN IMMEDIATE`), look up
what is already stored — events by `key_hash` (told apart by their (source, id)), calls by their
request id's hash — decide what is new (`plan`), insert it with sequence numbers assigned here, record
new subjects, commit. Writers are serialized, so the numbers commit in order and a rollup watermark is a
gap-free prefix; each call reserves five (calls.SEQ_SPAN), the events it derives use them.

Dedup spans both encodings: a call is new only when neither its request id is in `llm_calls` nor any of
its derived ids in `events` (a call stored before migration 0021, or in pieces); otherwise its events are
taken one by one as plain events, each a duplicate when stored either way. The functions take the driver
connection (psycopg or sqlite3) and raise the driver's own errors; the store translates them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tollway.adapters.sql.calls import SEQ_SPAN, CallRow, Shape, derived_hashes, request_hash, split_id
from tollway.adapters.sql.event_keys import EventKey, EventRow, StoredCopy
from tollway.metering.llm import GATEWAY_SOURCE

Unit = EventRow | CallRow  # what a batch writes, in order

# Keyed by schema too, so deployments sharing one database do not serialize each other. The rollup
# writers take the same lock statement with their own key (store.py).
POSTGRES_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))"
# The ingest writer's lock statement also turns sequential scans off for its transaction (set_config(..., true)
# is SET LOCAL): a table that grew since it was last analyzed (a new deployment's first hours, a bulk load) has
# statistics that make `key_hash = ANY(...)` look cheaper as a sequential scan, which read every stored event
# for each batch (14 ms per 1,000-event batch at 50,000 stored, growing with the table). The look-ups are
# planned after this ran. And JIT off: with sequential scans off, a statement that can only scan (the `meters`
# read of POSTGRES_TOP) is costed above 10^10, past jit_above_cost, and was JIT-compiled in every
# transaction (~270 ms of the backend's CPU each, measured: 28 single events/s at c=8).
POSTGRES_INGEST_LOCK = (
    "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema())), set_config('enable_seqscan', 'off', true), "
    "set_config('jit', 'off', true)"
)
INGEST_LOCK = 0x746F6C6C  # "toll": serializes event writers on PostgreSQL
SQLITE_KEYS_PER_LOOKUP = 500  # below SQLite's bound on host parameters

_CALL_COLUMNS = (
    "c.request_id, c.subject, c.time_us, s.model, s.requested_model, s.upstream_model, s.provider, s.route, "
    "s.status_code, s.flags, c.input, c.output, c.cache_read, c.cache_write, c.reasoning, c.cost_input, "
    "c.cost_output, c.cost_cache_read, c.cost_cache_write, c.cost_total, c.duration_ms"
)
_CALLS_FROM = "FROM llm_calls c JOIN llm_call_shapes s ON s.id = c.shape"
_EVENTS_STORED = "SELECT source, id, type, subject, time_us, data FROM events"
_SHAPE_COLUMNS = "model, requested_model, upstream_model, provider, route, status_code, flags"
_INSERT_EVENT = "seq, source, id, type, subject, time_us, stored_us, data, key_hash"
_INSERT_CALL = (
    "seq, key_hash, request_id, subject, time_us, stored_us, shape, input, output, cache_read, cache_write, "
    "reasoning, cost_input, cost_output, cost_cache_read, cost_cache_write, cost_total, duration_ms"
)
SQLITE_TOP = (
    "SELECT max(coalesce((SELECT max(seq) FROM events), 0), coalesce((SELECT max(seq) FROM llm_calls) + 4, 0), "
    "coalesce((SELECT max(rolled_seq) FROM meters), 0))"
)
POSTGRES_TOP = (
    "SELECT GREATEST((SELECT max(seq) FROM events), (SELECT max(seq) + 4 FROM llm_calls), "
    "(SELECT max(rolled_seq) FROM meters), 0)"
)
POSTGRES_EVENTS = (
    f"INSERT INTO events ({_INSERT_EVENT}) SELECT * FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], "
    "%b::text[], %b::bigint[], %b::bigint[], %b::text[], %b::int4[]) ORDER BY 1"
)
# Batches of at least POSTGRES_COPY_MIN new events go by COPY (binary; psycopg formats the rows in C) instead of the
# unnest above: the writer's CPU for a 1,000-row insert 2.8 -> 0.85 ms, the backend's about the same (measured).
POSTGRES_COPY_MIN = 64
POSTGRES_COPY_EVENTS = f"COPY events ({_INSERT_EVENT}) FROM STDIN (FORMAT BINARY)"
POSTGRES_COPY_TYPES = ["int8", "text", "text", "text", "text", "int8", "int8", "text", "int4"]  # as _INSERT_EVENT
POSTGRES_CALLS = (
    f"INSERT INTO llm_calls ({_INSERT_CALL}) SELECT * FROM unnest(%b::bigint[], %b::int4[], %b::text[], %b::text[], "
    "%b::bigint[], %b::bigint[], %b::int4[], %b::int4[], %b::int4[], %b::int4[], %b::int4[], %b::int4[], "
    "%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::int4[]) ORDER BY 1"
)


@dataclass
class BatchOutcome:
    """Which keys were stored by this batch, the stored copies of those already there, and the shape ids
    this write looked up or added (cached by the writer once committed)."""

    new_keys: set[EventKey] = field(default_factory=set)
    stored: dict[EventKey, StoredCopy] = field(default_factory=dict)
    shapes: dict[Shape, int] = field(default_factory=dict)


def plan(
    units: Sequence[Unit],
    stored_events: dict[EventKey, StoredCopy],
    stored_calls: dict[str, CallRow],
    outcome: BatchOutcome,
) -> list[Unit]:
    """What to insert, in order; the duplicates' stored copies go to `outcome.stored`."""
    inserts: list[Unit] = []
    for unit in units:
        if isinstance(unit, CallRow):
            keys = unit.keys
            if unit.request_id not in stored_calls and not (stored_events and any(k in stored_events for k in keys)):
                inserts.append(unit)
                outcome.new_keys.update(keys)
                continue
            rows: Iterable[EventRow] = unit.rows  # stored before, at least in part: event by event
        else:
            rows = (unit,)
        for row in rows:
            key = (row[0], row[1])
            copy = stored_events.get(key) or _derived_copy(stored_calls, row)
            if copy is not None:
                outcome.stored[key] = copy
            else:
                inserts.append(row)
                outcome.new_keys.add(key)
    return inserts


def _derived_copy(stored_calls: dict[str, CallRow], row: EventRow) -> StoredCopy | None:
    parts = split_id(row[1]) if row[0] == GATEWAY_SOURCE else None
    call = stored_calls.get(parts[0]) if parts is not None else None
    for derived in call.rows if call is not None else ():
        if derived[1] == row[1]:
            return (derived[2], derived[3], derived[4], derived[5])
    return None


def _event_hashes(units: Sequence[Unit]) -> list[int]:
    """The key hashes of every event the units hold or derive (to look them up)."""
    hashes: list[int] = []
    for unit in units:
        if isinstance(unit, CallRow):
            hashes.extend(derived_hashes(unit.request_id, unit.tokens))
        else:
            hashes.append(unit[6])
    return hashes


def _event_keys(units: Sequence[Unit]) -> set[EventKey]:
    """The (source, id) of every event the units hold or derive: built only when a look-up found a row."""
    keys: set[EventKey] = set()
    for unit in units:
        if isinstance(unit, CallRow):
            keys.update(unit.keys)
        else:
            keys.add((unit[0], unit[1]))
    return keys


def _request_ids(units: Sequence[Unit]) -> set[str]:
    found: set[str] = set()
    for unit in units:
        if isinstance(unit, CallRow):
            found.add(unit.request_id)
        elif unit[0] == GATEWAY_SOURCE and (parts := split_id(unit[1])) is not None:
            found.add(parts[0])
    return found


def _stored_call(row: Sequence[Any]) -> CallRow:
    request_id, subject, time_us = row[0], row[1], int(row[2])
    shape: Shape = (row[3], row[4], row[5], row[6], row[7], int(row[8]), int(row[9]))
    counts = (int(row[10]), int(row[11]), int(row[12]), int(row[13]), int(row[14]))
    costs = (row[15], row[16], row[17], row[18], row[19])
    duration = None if row[20] is None else int(row[20])
    return CallRow(request_id, subject, time_us, shape, counts, costs, duration)


def _numbered(
    inserts: Sequence[Unit], top: int, stored_us: int, shapes: dict[Shape, int]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The insert parameters of events and calls, numbered from `top` + 1 in order."""
    events: list[tuple[Any, ...]] = []
    calls: list[tuple[Any, ...]] = []
    seq = top
    for unit in inserts:
        if isinstance(unit, CallRow):
            calls.append(
                (
                    seq + 1,
                    unit.key_hash,
                    unit.request_id,
                    unit.subject,
                    unit.time_us,
                    stored_us,
                    shapes[unit.shape],
                    *unit.tokens,
                    *unit.costs,
                    unit.duration_ms,
                )
            )
            seq += SEQ_SPAN
        else:
            source, event_id, kind, subject, time_us, data, hashed = unit
            events.append((seq + 1, source, event_id, kind, subject, time_us, stored_us, data, hashed))
            seq += 1
    return events, calls


def _wanted_events(found: Iterable[Sequence[Any]], wanted: set[EventKey], into: dict[EventKey, StoredCopy]) -> None:
    for source, event_id, kind, subject, time_us, data in found:
        if (source, event_id) in wanted:  # not a key that only shares a hash with one of the batch's
            into[(source, event_id)] = (kind, subject, int(time_us), data)


def _wanted_calls(found: Iterable[Sequence[Any]], request_ids: set[str], into: dict[str, CallRow]) -> None:
    for row in found:
        if row[0] in request_ids:
            into[row[0]] = _stored_call(row)


def write_sqlite(
    connection: Any, units: Sequence[Unit], new_subjects: Sequence[str], stored_us: int, shapes: dict[Shape, int]
) -> BatchOutcome:
    """Store `units` on a sqlite3 connection and commit (rolls back and re-raises on error)."""
    cursor = connection.cursor()
    outcome = BatchOutcome()
    try:
        # Take the write lock up front (waiting out busy_timeout): a deferred transaction that reads first
        # and writes later can fail with SQLITE_BUSY_SNAPSHOT under contention.
        cursor.execute("BEGIN IMMEDIATE")
        wanted: set[EventKey] | None = None
        stored_events: dict[EventKey, StoredCopy] = {}
        for chunk in _chunks(_event_hashes(units)):
            found = cursor.execute(f"{_EVENTS_STORED} WHERE key_hash IN ({_marks(chunk)})", chunk).fetchall()
            if found:
                wanted = _event_keys(units) if wanted is None else wanted
                _wanted_events(found, wanted, stored_events)
        request_ids = _request_ids(units)
        stored_calls: dict[str, CallRow] = {}
        for chunk in _chunks([request_hash(r) for r in request_ids]):
            query = f"SELECT {_CALL_COLUMNS} {_CALLS_FROM} WHERE c.key_hash IN ({_marks(chunk)})"
            _wanted_calls(cursor.execute(query, chunk).fetchall(), request_ids, stored_calls)
        inserts = plan(units, stored_events, stored_calls, outcome)
        known = _sqlite_shapes(cursor, inserts, shapes, outcome)
        top = int(cursor.execute(SQLITE_TOP).fetchone()[0])
        events, calls = _numbered(inserts, top, stored_us, known)
        if events:
            cursor.executemany(f"INSERT INTO events ({_INSERT_EVENT}) VALUES ({_marks(events[0])})", events)
        if calls:
            cursor.executemany(f"INSERT INTO llm_calls ({_INSERT_CALL}) VALUES ({_marks(calls[0])})", calls)
        if new_subjects:
            cursor.executemany(
                "INSERT OR IGNORE INTO subjects (key, first_seen_us) VALUES (?, ?)",
                [(name, stored_us) for name in new_subjects],
            )
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        cursor.close()
    return outcome


def _shape_ids(
    inserts: Sequence[Unit], shapes: dict[Shape, int], outcome: BatchOutcome, shape_id: Callable[[Shape], int]
) -> dict[Shape, int]:
    """The known shape ids plus those of the shapes `inserts` bring (found, or added, by `shape_id`)."""
    known = dict(shapes)
    for unit in inserts:
        if isinstance(unit, CallRow) and unit.shape not in known:
            known[unit.shape] = outcome.shapes[unit.shape] = shape_id(unit.shape)
    return known


def _shape_where(mark: str) -> str:
    return " AND ".join(f"{name} = {mark}" for name in _SHAPE_COLUMNS.split(", "))


_SQLITE_SHAPE_FIND = f"SELECT id FROM llm_call_shapes WHERE {_shape_where('?')}"
_SQLITE_SHAPE_ADD = f"INSERT INTO llm_call_shapes ({_SHAPE_COLUMNS}) VALUES ({', '.join(['?'] * 7)})"
_POSTGRES_SHAPE_FIND = f"SELECT id FROM llm_call_shapes WHERE {_shape_where('%s')}"
_POSTGRES_SHAPE_ADD = f"INSERT INTO llm_call_shapes ({_SHAPE_COLUMNS}) VALUES ({', '.join(['%s'] * 7)}) RETURNING id"


def _sqlite_shapes(
    cursor: Any, inserts: Sequence[Unit], shapes: dict[Shape, int], outcome: BatchOutcome
) -> dict[Shape, int]:
    def shape_id(shape: Shape) -> int:
        found = cursor.execute(_SQLITE_SHAPE_FIND, shape).fetchone()
        if found is None:
            cursor.execute(_SQLITE_SHAPE_ADD, shape)
            return int(cursor.lastrowid)
        return int(found[0])

    return _shape_ids(inserts, shapes, outcome, shape_id)


def write_postgres(
    connection: Any, units: Sequence[Unit], new_subjects: Sequence[str], stored_us: int, shapes: dict[Shape, int]
) -> BatchOutcome:
    """Store `units` on a psycopg connection (not in a transaction) and commit: one pipelined exchange to
    lock and look up, one to insert and commit."""
    outcome = BatchOutcome()
    hashes = _event_hashes(units)
    request_ids = _request_ids(units)
    with connection.pipeline():
        lock, events_found, calls_found, top = (connection.cursor() for _ in range(4))
        lock.execute(POSTGRES_INGEST_LOCK, (INGEST_LOCK,))
        events_found.execute(f"{_EVENTS_STORED} WHERE key_hash = ANY(%b::int4[])", (hashes,))
        if request_ids:  # no gateway call among the units (events from outside): nothing to look up there
            hashes = [request_hash(r) for r in request_ids]
            calls_found.execute(f"SELECT {_CALL_COLUMNS} {_CALLS_FROM} WHERE c.key_hash = ANY(%b::int4[])", (hashes,))
        top.execute(POSTGRES_TOP)
    stored_events: dict[EventKey, StoredCopy] = {}
    found = events_found.fetchall()
    if found:
        _wanted_events(found, _event_keys(units), stored_events)
    stored_calls: dict[str, CallRow] = {}
    if request_ids:
        _wanted_calls(calls_found.fetchall(), request_ids, stored_calls)
    inserts = plan(units, stored_events, stored_calls, outcome)
    known = _postgres_shapes(connection, inserts, shapes, outcome)
    events, calls = _numbered(inserts, int(top.fetchone()[0]), stored_us, known)
    if len(events) >= POSTGRES_COPY_MIN:  # one more round trip, a third of the writer's CPU for the rows
        with connection.cursor() as cursor, cursor.copy(POSTGRES_COPY_EVENTS) as copy:
            copy.set_types(POSTGRES_COPY_TYPES)
            for row in events:
                copy.write_row(row)
        events = []
    with connection.pipeline():
        cursor = connection.cursor()
        if events:
            cursor.execute(POSTGRES_EVENTS, [list(column) for column in zip(*events, strict=True)])
        if calls:
            cursor.execute(POSTGRES_CALLS, [list(column) for column in zip(*calls, strict=True)])
        if new_subjects:
            cursor.execute(
                "INSERT INTO subjects (key, first_seen_us) SELECT unnest(%b::text[]), %s ON CONFLICT DO NOTHING",
                (list(new_subjects), stored_us),
            )
        connection.commit()
    return outcome


def _postgres_shapes(
    connection: Any, inserts: Sequence[Unit], shapes: dict[Shape, int], outcome: BatchOutcome
) -> dict[Shape, int]:
    def shape_id(shape: Shape) -> int:
        found = connection.execute(_POSTGRES_SHAPE_FIND, shape).fetchone()
        if found is None:
            found = connection.execute(_POSTGRES_SHAPE_ADD, shape).fetchone()
        return int(found[0])

    return _shape_ids(inserts, shapes, outcome, shape_id)


def _chunks(values: list[int]) -> Iterable[list[int]]:
    ordered = sorted(set(values))
    for offset in range(0, len(ordered), SQLITE_KEYS_PER_LOOKUP):
        yield ordered[offset : offset + SQLITE_KEYS_PER_LOOKUP]


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))
