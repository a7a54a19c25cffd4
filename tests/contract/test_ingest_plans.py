"""PostgreSQL plans of the ingest transaction (ingest_sql.write_postgres): after the writer's lock statement, every
statement is planned without JIT compilation (with sequential scans off, a statement that can only scan is costed
past jit_above_cost and was compiled in every transaction: ~270 ms of the backend's CPU each), and the duplicate
look-up probes ix_events_key_hash."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine

from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.ingest_sql import (
    _CALL_COLUMNS,
    _CALLS_FROM,
    _EVENTS_STORED,
    INGEST_LOCK,
    POSTGRES_EVENTS,
    POSTGRES_INGEST_LOCK,
    POSTGRES_TOP,
)
from tollway.adapters.sql.migrate import upgrade


def _plan(cursor: Any, statement: str, params: tuple[Any, ...] = ()) -> str:
    cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", params)
    return json.dumps(cursor.fetchone()[0])


def test_ingest_statements_are_planned_without_jit(postgres_url: str) -> None:
    engine: Engine = create_sql_engine(postgres_url)
    upgrade(engine)
    held = engine.raw_connection()
    try:
        driver = held.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        cursor.execute("SET jit = on")  # the server's default; a test database may have it off
        cursor.execute("SET jit_above_cost = 100000")
        cursor.execute(POSTGRES_INGEST_LOCK, (INGEST_LOCK,))
        cursor.execute("SELECT current_setting('jit'), current_setting('enable_seqscan')")
        assert cursor.fetchone() == ("off", "off")
        lookup = _plan(cursor, f"{_EVENTS_STORED} WHERE key_hash = ANY(%s::int4[])", ([1, 2, 3],))
        assert "ix_events_key_hash" in lookup
        columns: list[list[Any]] = [[1], ["s"], ["i"], ["t"], ["subject"], [1], [1], ["{}"], [1]]
        plans = [
            _plan(cursor, POSTGRES_TOP),
            lookup,
            _plan(cursor, f"SELECT {_CALL_COLUMNS} {_CALLS_FROM} WHERE c.key_hash = ANY(%s::int4[])", ([1],)),
            _plan(cursor, POSTGRES_EVENTS.replace("%b", "%s"), tuple(columns)),
            _plan(
                cursor,
                "INSERT INTO subjects (key, first_seen_us) SELECT unnest(%s::text[]), %s ON CONFLICT DO NOTHING",
                (["a"], 1),
            ),
        ]
        assert all('"JIT"' not in plan for plan in plans), plans
        driver.rollback()
    finally:
        held.close()
        engine.dispose()
