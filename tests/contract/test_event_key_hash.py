"""Duplicate detection by key_hash (migration 0020) on SQLite and PostgreSQL: the hash only narrows the lookup,
(source, id) decides, so keys that share a hash are never merged; the migration hashes the stored events as
ingestion does (in SQL on PostgreSQL), keeps their duplicates detected, and a downgrade restores the unique key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from tollway.adapters.sql import ingest
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import alembic_config, upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.clock import FrozenClock
from tollway.metering.events import Event, to_micros

NOW = datetime(2026, 3, 2, tzinfo=UTC)
KEYS = [("t", "1"), ("t", "2"), ("u", "1"), ("t1", "1"), ("ßource/ü", "id-€-1"), ("a" * 200, "é" * 200)]


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        return create_sql_engine(f"sqlite:///{tmp_path / 'hash.db'}")
    return create_sql_engine(request.getfixturevalue("postgres_url"))


def event(source: str, event_id: str, tokens: int = 5) -> Event:
    return Event(id=event_id, source=source, type="api.tokens", subject="acme", time=NOW, data={"tokens": tokens})


async def test_keys_sharing_a_hash_stay_apart_and_duplicates_are_exact(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(engine)
    monkeypatch.setattr(ingest, "key_hash", lambda source, event_id: 7)  # every key collides
    store = SqlEventStore(engine, FrozenClock(NOW))
    try:
        assert await store.insert_events([event(s, i) for s, i in KEYS[:3]]) == 3
        assert await store.insert_events([event(s, i) for s, i in KEYS]) == 3
        assert store.stats.duplicates_total == 3
        assert await store.insert_events([event("t", "2", tokens=6), event("t", "2"), event("t", "9")]) == 1
        assert store.stats.conflicts_total == 1
        assert store.stats.duplicates_total == 4
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT source, id, data, key_hash FROM events ORDER BY seq")).all()
        assert [(r[0], r[1]) for r in stored] == [*KEYS, ("t", "9")]
        assert {r[3] for r in stored} == {7}
        assert all(r[2] == '{"tokens":5}' for r in stored)  # the first copy is kept
    finally:
        await store.close()


async def test_migration_hashes_stored_events_as_ingestion_does(engine: Engine) -> None:
    from alembic import command

    upgrade(engine, "0019_rollups_without_rowid")
    insert = text(
        "INSERT INTO events (source, id, type, subject, time_us, ingested_us, data)"
        " VALUES (:source, :id, 'api.tokens', 'acme', :time, :time, '{\"tokens\": 5}')"
    )
    with engine.begin() as connection:
        for source, event_id in KEYS:
            connection.execute(insert, {"source": source, "id": event_id, "time": to_micros(NOW)})
    upgrade(engine)
    with engine.connect() as connection:
        hashes = connection.execute(text("SELECT source, id, key_hash FROM events ORDER BY seq")).all()
    assert [tuple(r) for r in hashes] == [(s, i, ingest.key_hash(s, i)) for s, i in KEYS]
    assert not inspect(engine).get_unique_constraints("events")
    old_insert = (  # what a Tollway from before 0020 sends: it must fail, not be skipped as a duplicate
        "INSERT INTO events (source, id, type, subject, time_us, ingested_us, data) VALUES "
        "('old', '1', 'api.tokens', 'acme', 1, 1, '{}') ON CONFLICT (source, id) DO NOTHING"
    )
    if engine.dialect.name == "sqlite":
        old_insert = old_insert.replace("INSERT", "INSERT OR IGNORE").split(" ON CONFLICT")[0]
    with pytest.raises(DBAPIError), engine.begin() as connection:
        connection.execute(text(old_insert))
    store = SqlEventStore(engine, FrozenClock(NOW))
    try:
        resent = [event(s, i) for s, i in KEYS]
        assert await store.insert_events([*resent, event("t", "1", tokens=9), event("new", "1")]) == 1
        assert store.stats.duplicates_total == len(KEYS)
        assert store.stats.conflicts_total == 1
    finally:
        await store.close()
    command.downgrade(alembic_config(engine), "0019_rollups_without_rowid")
    assert [c["column_names"] for c in inspect(engine).get_unique_constraints("events")] == [["source", "id"]]
    with engine.connect() as connection:
        keys = connection.execute(text("SELECT source, id FROM events ORDER BY seq")).all()
    assert [tuple(r) for r in keys] == [*KEYS, ("new", "1")]
    engine.dispose()
