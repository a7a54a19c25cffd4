"""The store's raw event reads (SqlEventStore: load_events, latest_events, load_events_after, list_events,
event_span), over both encodings (event_rows.py): blocking, on a connection the caller holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection

from tollway.adapters.sql.event_rows import Where, max_seq_sql, source_sql
from tollway.metering.events import Event, from_micros, to_micros
from tollway.metering.llm import REQUEST_EVENT, TOKENS_EVENT
from tollway.metering.ports import EventFilter, ListedEvent
from tollway.metering.rollup import DAY_US

TAIL_SCAN_LIMIT = 50_000  # events past a watermark read by sequence and filtered in Python
NEWEST = "time_us DESC, seq DESC"


def _postgres(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def _event(row: Any, event_type: str | None = None) -> Event:
    return Event(
        id=row.id,
        source=row.source,
        type=event_type or row.type,
        subject=row.subject,
        time=from_micros(row.time_us),
        data=orjson.loads(row.data),
    )


def load_events(connection: Connection, where: Where, *, newest: int | None = None) -> list[Event]:
    """Events of `where.event_type`, oldest first; with `newest`, that many of the newest, newest first."""
    params: dict[str, Any] = {}
    if newest is None:
        source = source_sql(_postgres(connection), where, params)
        query = f"SELECT * FROM ({source}) ev ORDER BY time_us, seq"
    else:
        source = source_sql(_postgres(connection), where, params, order=NEWEST, limit=newest)
        query = f"SELECT * FROM ({source}) ev ORDER BY {NEWEST} LIMIT {int(newest)}"
    return [_event(row) for row in connection.exec_driver_sql(query, params)]


def list_events(connection: Connection, where: EventFilter) -> list[ListedEvent]:
    params: dict[str, Any] = {}
    filtered = Where(
        start_us=None if where.start is None else to_micros(where.start),
        end_us=None if where.end is None else to_micros(where.end),
        stored_from_us=None if where.ingested_from is None else to_micros(where.ingested_from),
        stored_to_us=None if where.ingested_to is None else to_micros(where.ingested_to),
        event_id=where.event_id,
        subjects=where.subjects,
    )
    source = source_sql(_postgres(connection), filtered, params, order=NEWEST, limit=where.limit)
    query = f"SELECT * FROM ({source}) ev ORDER BY {NEWEST} LIMIT {int(where.limit)}"
    return [ListedEvent(_event(row), from_micros(row.stored_us)) for row in connection.exec_driver_sql(query, params)]


def load_events_after(
    connection: Connection,
    event_type: str,
    after_seq: int,
    start_us: int | None,
    end_us: int | None,
    subject_keys: Sequence[str] | None,
) -> list[tuple[Event, int]]:
    high = connection.exec_driver_sql(max_seq_sql()).scalar()
    if high is None or high <= after_seq:
        return []  # the usual case: the worker has caught up
    where = Where(seq_after=after_seq)
    if high - after_seq > TAIL_SCAN_LIMIT:
        # A long tail (the worker is behind): let the database narrow it by type, time and subject.
        where = Where(
            event_type=event_type, seq_after=after_seq, start_us=start_us, end_us=end_us, subjects=subject_keys
        )
    # A short tail is read by sequence (primary key) and narrowed here, type included: its cost stays
    # the tail's length, not the number of the type's or subject's stored events.
    params: dict[str, Any] = {}
    query = f"SELECT * FROM ({source_sql(_postgres(connection), where, params)}) ev ORDER BY seq"
    wanted = set(subject_keys) if subject_keys is not None else None
    return [
        (_event(r, event_type), int(r.seq))
        for r in connection.exec_driver_sql(query, params)
        if r.type == event_type
        and (start_us is None or r.time_us >= start_us)
        and (end_us is None or r.time_us < end_us)
        and (wanted is None or r.subject in wanted)
    ]


def event_span(connection: Connection, event_type: str) -> tuple[int, int] | None:
    # Two scalar subqueries: each is one probe of an index on the time. Asked together in one SELECT,
    # SQLite walks every event of the type instead.
    spans = [
        "SELECT (SELECT min(time_us) FROM events WHERE type = {t}), (SELECT max(time_us) FROM events WHERE type = {t})"
    ]
    if event_type in (TOKENS_EVENT, REQUEST_EVENT):  # every call derives both types
        spans.append("SELECT (SELECT min(time_us) FROM llm_calls), (SELECT max(time_us) FROM llm_calls)")
    t = "%(t)s" if _postgres(connection) else ":t"
    found = [tuple(connection.exec_driver_sql(spans[0].format(t=t), {"t": event_type}).one())]
    found += [tuple(connection.exec_driver_sql(span).one()) for span in spans[1:]]
    lows = [int(low) for low, _ in found if low is not None]
    highs = [int(high) for _, high in found if high is not None]
    if not lows:
        return None
    low, high = min(lows), max(highs)
    return low - low % DAY_US, high - high % DAY_US + DAY_US
