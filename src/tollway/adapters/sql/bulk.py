"""Bulk statements on the driver connection: the rollup hot path (ingest has its own module, ingest.py).

SQLAlchemy's per-row parameter handling costs more than the database work for batches of
thousands of rows, so these few statements go to the DBAPI cursor of the same transaction:
PostgreSQL gets one statement per batch with array parameters (`unnest`), SQLite a plain
`executemany`. Callers hold the write lock (see store.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection

ROLLUP_COLUMNS = (
    "meter, level_us, bucket_us, subject, dims, count, total, minimum, maximum, latest, latest_us, latest_seq, first_us"
)
ROLLUP_UPDATE = ", ".join(
    f"{c} = excluded.{c}"
    for c in ("count", "total", "minimum", "maximum", "latest", "latest_us", "latest_seq", "first_us")
)
ROLLUP_KEY = "meter, level_us, bucket_us, subject, dims"
LATER = (
    "excluded.latest_us IS NOT NULL AND (meter_rollups.latest_us IS NULL OR "
    "(excluded.latest_us, COALESCE(excluded.latest_seq, 0)) >= "
    "(meter_rollups.latest_us, COALESCE(meter_rollups.latest_seq, 0)))"
)


def merge_assignments(number: Callable[[str], str], total: str) -> str:
    """The SET clause of an upsert that merges the new partial (`excluded`) into the stored one with
    the rules of Partial.merge: counts and sums add, extremes and the first time keep the smaller or
    larger, the latest value is the one with the later (event time, sequence). `number(column)`
    reads a stored decimal text as a number; `total` is the sum's expression."""
    return ", ".join(
        [
            "count = meter_rollups.count + excluded.count",
            f"total = {total}",
            *(
                f"{column} = CASE WHEN meter_rollups.{column} IS NULL OR "
                f"{number('excluded.' + column)} {wins} {number('meter_rollups.' + column)} "
                f"THEN excluded.{column} ELSE meter_rollups.{column} END"
                for column, wins in (("minimum", "<"), ("maximum", ">"))
            ),
            *(
                f"{column} = CASE WHEN {LATER} THEN excluded.{column} ELSE meter_rollups.{column} END"
                for column in ("latest", "latest_us", "latest_seq")
            ),
            "first_us = CASE WHEN meter_rollups.first_us IS NULL OR excluded.first_us < meter_rollups.first_us "
            "THEN excluded.first_us ELSE meter_rollups.first_us END",
        ]
    )


# PostgreSQL merges in exact numeric arithmetic, whatever the stored text.
POSTGRES_MERGE = merge_assignments(
    lambda column: f"{column}::numeric", "(meter_rollups.total::numeric + excluded.total::numeric)::text"
)
VALUE_COLUMNS = "meter, level_us, bucket_us, subject, dims, digest"


def _cursor(connection: Connection) -> Any:
    return connection.connection.cursor()


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def merge_rollups_postgres(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Merge partial rows into the stored ones (PostgreSQL: no read-back needed)."""
    if not rows:
        return
    _cursor(connection).execute(
        f"INSERT INTO meter_rollups ({ROLLUP_COLUMNS}) SELECT * FROM unnest("
        "%b::text[], %b::bigint[], %b::bigint[], %b::text[], %b::text[], %b::bigint[], %b::text[], "
        "%b::text[], %b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::bigint[]) "
        f"ON CONFLICT ({ROLLUP_KEY}) DO UPDATE SET {POSTGRES_MERGE}",
        _columns(rows, 13),
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
