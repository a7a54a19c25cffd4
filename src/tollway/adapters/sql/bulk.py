"""Bulk statements on the driver connection: the ingest and rollup hot paths.

SQLAlchemy's per-row parameter handling costs more than the database work for batches of
thousands of rows, so these few statements go to the DBAPI cursor of the same transaction:
PostgreSQL gets one statement per batch with array parameters (`unnest`), SQLite a plain
`executemany`. Callers hold the write lock (see store.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

EVENT_COLUMNS = "source, id, type, subject, time_us, ingested_us, data"
ROLLUP_COLUMNS = (
    "meter, level_us, bucket_us, subject, dims, count, total, minimum, maximum, latest, latest_us, latest_seq, first_us"
)
ROLLUP_UPDATE = ", ".join(
    f"{c} = excluded.{c}"
    for c in ("count", "total", "minimum", "maximum", "latest", "latest_us", "latest_seq", "first_us")
)
ROLLUP_KEY = "meter, level_us, bucket_us, subject, dims"
VALUE_COLUMNS = "meter, level_us, bucket_us, subject, dims, digest"


def _cursor(connection: Connection) -> Any:
    return connection.connection.cursor()


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def insert_events(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> dict[tuple[str, str], int]:
    """Insert (source, id, type, subject, time_us, ingested_us, data) rows, skipping stored (source, id).

    Returns the sequence number of each row that was new."""
    cursor = _cursor(connection)
    if connection.dialect.name == "postgresql":
        cursor.execute(
            f"INSERT INTO events ({EVENT_COLUMNS}) SELECT * FROM unnest("
            "%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::text[]) "
            "ON CONFLICT (source, id) DO NOTHING RETURNING seq, source, id",
            _columns(rows, 7),
        )
        return {(source, event_id): seq for seq, source, event_id in cursor.fetchall()}
    before = cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
    cursor.executemany(f"INSERT OR IGNORE INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    cursor.execute("SELECT seq, source, id FROM events WHERE seq > ?", (before,))
    return {(source, event_id): seq for seq, source, event_id in cursor.fetchall()}


def stored_by_key(connection: Connection, keys: Sequence[tuple[str, str]]) -> list[tuple[Any, ...]]:
    """(source, id, type, subject, time_us, data) of the stored events with these (source, id) keys.

    PostgreSQL joins an unnest of the keys (an index lookup per key; a row-value IN list of this
    size is planned as a scan of the whole table). Only used on PostgreSQL."""
    cursor = _cursor(connection)
    cursor.execute(
        "SELECT e.source, e.id, e.type, e.subject, e.time_us, e.data FROM events e "
        "JOIN unnest(%b::text[], %b::text[]) AS k(source, id) ON e.source = k.source AND e.id = k.id",
        _columns(keys, 2),
    )
    return list(cursor.fetchall())


def insert_subjects(connection: Connection, keys: Sequence[str], first_seen_us: int) -> None:
    cursor = _cursor(connection)
    if connection.dialect.name == "postgresql":
        cursor.execute(
            "INSERT INTO subjects (key, first_seen_us) SELECT unnest(%b::text[]), %s ON CONFLICT DO NOTHING",
            (list(keys), first_seen_us),
        )
        return
    cursor.executemany(
        "INSERT OR IGNORE INTO subjects (key, first_seen_us) VALUES (?, ?)", [(k, first_seen_us) for k in keys]
    )


def upsert_rollups(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Write whole rollup rows (already merged with what was stored)."""
    if not rows:
        return
    cursor = _cursor(connection)
    if connection.dialect.name == "postgresql":
        cursor.execute(
            f"INSERT INTO meter_rollups ({ROLLUP_COLUMNS}) SELECT * FROM unnest("
            "%b::text[], %b::bigint[], %b::bigint[], %b::text[], %b::text[], %b::bigint[], %b::text[], "
            "%b::text[], %b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::bigint[]) "
            f"ON CONFLICT ({ROLLUP_KEY}) DO UPDATE SET {ROLLUP_UPDATE}",
            _columns(rows, 13),
        )
        return
    cursor.executemany(
        f"INSERT INTO meter_rollups ({ROLLUP_COLUMNS}) VALUES ({', '.join('?' * 13)}) "
        f"ON CONFLICT ({ROLLUP_KEY}) DO UPDATE SET {ROLLUP_UPDATE}",
        rows,
    )


def insert_values(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    cursor = _cursor(connection)
    if connection.dialect.name == "postgresql":
        cursor.execute(
            f"INSERT INTO meter_rollup_values ({VALUE_COLUMNS}) SELECT * FROM unnest("
            "%b::text[], %b::bigint[], %b::bigint[], %b::text[], %b::text[], %b::text[]) ON CONFLICT DO NOTHING",
            _columns(rows, 6),
        )
        return
    cursor.executemany(f"INSERT OR IGNORE INTO meter_rollup_values ({VALUE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", rows)


def load_rollups_by_key(
    connection: Connection, slug: str, keys: Sequence[tuple[int, int, str, str]]
) -> list[tuple[Any, ...]]:
    """Stored rollup rows for these (level_us, bucket_us, subject, dims) keys of one meter."""
    if not keys:
        return []
    cursor = _cursor(connection)
    columns = (
        "level_us, bucket_us, subject, dims, count, total, minimum, maximum, latest, latest_us, latest_seq, first_us"
    )
    if connection.dialect.name == "postgresql":
        cursor.execute(
            f"SELECT {columns} FROM meter_rollups r JOIN unnest(%b::bigint[], %b::bigint[], %b::text[], %b::text[]) "
            "AS k(level_us, bucket_us, subject, dims) USING (level_us, bucket_us, subject, dims) WHERE r.meter = %s",
            (*_columns(keys, 4), slug),
        )
        return list(cursor.fetchall())
    # SQLite plans a row-value IN (VALUES ...) as a scan; a join with a temporary key table uses the primary key.
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS rollup_keys (level_us INTEGER, bucket_us INTEGER, subject TEXT, dims TEXT)"
    )
    cursor.execute("DELETE FROM temp.rollup_keys")
    cursor.executemany("INSERT INTO temp.rollup_keys VALUES (?, ?, ?, ?)", keys)
    cursor.execute(
        f"SELECT {', '.join('r.' + c.strip() for c in columns.split(','))} FROM temp.rollup_keys k "
        "CROSS JOIN meter_rollups r ON r.meter = ? AND r.level_us = k.level_us AND r.bucket_us = k.bucket_us "
        "AND r.subject = k.subject AND r.dims = k.dims",
        (slug,),
    )
    return list(cursor.fetchall())
