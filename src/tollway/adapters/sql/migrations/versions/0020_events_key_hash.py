"""events: duplicates found by a 4-byte key_hash (indexed, not unique) instead of the (source, id) unique index

Revision ID: 0020_events_key_hash
Revises: 0019_rollups_without_rowid

The unique index on (source, id) repeated both texts for every event (226 bytes per gateway call on
SQLite, 256 on PostgreSQL in bench/footprint.py). Ingestion now looks a key up by key_hash, a CRC-32 of
source then id as a signed 32-bit integer (ingest.key_hash), and tells the rows found apart by their
(source, id), so detection stays exact; event writers are serialized (the advisory lock; SQLite's write
lock), so no unique index is needed to keep a key stored once. The hashes of the stored events are
computed here by the same Python function: on SQLite as a SQL function while the table is rebuilt
without the unique constraint (its pages are given back after the upgrade, migrate.py); on PostgreSQL
in chunks of 20,000 rows (each row rewritten once; autovacuum reuses the space; ~15k events/s).

Not additive, on purpose: `ingested_us` is renamed `stored_us`, so a Tollway from before 0020 fails
loudly on the events table (no such column) instead of writing rows without key_hash (on SQLite its
`INSERT OR IGNORE` would skip them as if they were duplicates: usage lost); its usage waits in its
journal. A guard trigger instead doubled SQLite's insert cost. Stop the old processes while upgrading
(docs/deployment.md, Upgrades).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tollway.adapters.sql.ingest import key_hash

revision = "0020_events_key_hash"
down_revision = "0019_rollups_without_rowid"
branch_labels = None
depends_on = None

POSTGRES_CHUNK = 20_000
POSTGRES_READ = "SELECT seq, source, id FROM events WHERE seq > :after ORDER BY seq LIMIT :limit"
POSTGRES_WRITE = (
    "UPDATE events SET key_hash = v.key_hash FROM unnest(CAST(:seqs AS bigint[]), CAST(:hashes AS int4[]))"
    " AS v(seq, key_hash) WHERE events.seq = v.seq"
)
COLUMNS = "seq, source, id, type, subject, time_us, {stored}, data"
SQLITE_TABLE = """CREATE TABLE {name} (
    seq INTEGER NOT NULL,
    source VARCHAR(255) NOT NULL,
    id VARCHAR(255) NOT NULL,
    type VARCHAR(255) NOT NULL,
    subject VARCHAR(255) NOT NULL,
    time_us BIGINT NOT NULL,
    {stored} BIGINT NOT NULL,
    data TEXT NOT NULL,
    {tail}
)"""
SQLITE_INDEXES = (
    "CREATE INDEX ix_events_type_time ON events (type, time_us)",
    "CREATE INDEX ix_events_type_subject_time ON events (type, subject, time_us)",
)


def _sqlite_rebuild(*, hashed: bool) -> None:
    bind = op.get_bind()
    raw = bind.connection.driver_connection
    assert raw is not None
    raw.create_function("tollway_key_hash", 2, key_hash, deterministic=True)
    if hashed:
        tail = "key_hash INTEGER NOT NULL,\n    PRIMARY KEY (seq)"
        table = SQLITE_TABLE.format(name="events_new", stored="stored_us", tail=tail)
        columns = COLUMNS.format(stored="ingested_us")
        copy = f"INSERT INTO events_new SELECT {columns}, tollway_key_hash(source, id) FROM events ORDER BY seq"
    else:
        tail = "PRIMARY KEY (seq),\n    CONSTRAINT uq_events_source_id UNIQUE (source, id)"
        table = SQLITE_TABLE.format(name="events_new", stored="ingested_us", tail=tail)
        copy = f"INSERT INTO events_new SELECT {COLUMNS.format(stored='stored_us')} FROM events ORDER BY seq"
    op.execute(table)
    op.execute(copy)
    op.execute("DROP TABLE events")
    op.execute("ALTER TABLE events_new RENAME TO events")
    for index in SQLITE_INDEXES:
        op.execute(index)
    if hashed:
        op.execute("CREATE INDEX ix_events_key_hash ON events (key_hash)")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(hashed=True)
        return
    op.execute("ALTER TABLE events ADD COLUMN key_hash integer")
    bind, after = op.get_bind(), 0
    while rows := bind.execute(sa.text(POSTGRES_READ), {"after": after, "limit": POSTGRES_CHUNK}).all():
        hashes = [key_hash(source, event_id) for _, source, event_id in rows]
        bind.execute(sa.text(POSTGRES_WRITE), {"seqs": [row[0] for row in rows], "hashes": hashes})
        after = rows[-1][0]
    op.execute("ALTER TABLE events ALTER COLUMN key_hash SET NOT NULL")
    op.execute("CREATE INDEX ix_events_key_hash ON events (key_hash)")
    op.execute("ALTER TABLE events DROP CONSTRAINT uq_events_source_id")
    op.execute("ALTER TABLE events RENAME COLUMN ingested_us TO stored_us")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(hashed=False)
        return
    op.execute("ALTER TABLE events RENAME COLUMN stored_us TO ingested_us")
    op.execute("ALTER TABLE events ADD CONSTRAINT uq_events_source_id UNIQUE (source, id)")
    op.execute("DROP INDEX ix_events_key_hash")
    op.execute("ALTER TABLE events DROP COLUMN key_hash")
