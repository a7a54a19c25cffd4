"""Raw events past their retention: deleted once every meter has folded them into its rollups
(plain events, and gateway calls' rows: llm_calls).

Only events that are both older than the cutoff (event time) and at or below every meter's watermark
go: meter queries, running totals and invoices read the rollups for them, so their answers do not
change. Deleting walks the primary key from the oldest event, in chunks, each its own short write
transaction (SQLite has one writer: ingestion goes on between chunks). On SQLite the freed pages are
then given back to the file system (`PRAGMA incremental_vacuum`, on databases created with
`auto_vacuum=INCREMENTAL`; older files reuse the freed pages for new events instead).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

EXPIRE_SQL = text(
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
    " WHERE seq <= (SELECT MIN(rolled_seq) FROM meters) AND time_us < :before"
    " ORDER BY seq LIMIT :limit)"
)
# A gateway call's row goes once all five of its sequence numbers are rolled up (calls.SEQ_SPAN).
EXPIRE_CALLS_SQL = text(
    "DELETE FROM llm_calls WHERE seq IN (SELECT seq FROM llm_calls"
    " WHERE seq <= (SELECT MIN(rolled_seq) FROM meters) - 4 AND time_us < :before"
    " ORDER BY seq LIMIT :limit)"
)


def expire_chunk(connection: Connection, before_us: int, limit: int) -> int:
    """Delete up to `limit` expired events and up to `limit` expired call rows that every meter has
    rolled up; how many rows went."""
    params = {"before": before_us, "limit": limit}
    deleted = int(connection.execute(EXPIRE_SQL, params).rowcount or 0)
    return deleted + int(connection.execute(EXPIRE_CALLS_SQL, params).rowcount or 0)


def reclaim_sqlite(connection: Connection) -> None:
    """Give free pages back to the file system (a no-op unless the file was made with auto_vacuum=INCREMENTAL)."""
    raw = connection.connection.driver_connection
    assert raw is not None
    # sqlite3_exec steps the pragma to its end (it frees one page per step; execute() would step once).
    raw.executescript("PRAGMA incremental_vacuum;")
