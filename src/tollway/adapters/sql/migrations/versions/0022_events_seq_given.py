"""events.seq without a default on PostgreSQL: the writer numbers the events (since 0021), an older process fails

Revision ID: 0022_events_seq_given
Revises: 0021_llm_calls

Since 0021 the event writer gives every event and gateway call its sequence numbers itself, over both tables
(ingest_sql.py). A process from before 0021 would take them from the column's sequence, below numbers the new
writer already gave, so a meter's watermark could pass its events by (never rolled up). Without the default
its inserts fail loudly (its usage waits in its journal), as 0020's rename does for older ones. SQLite has no
such guard (its `seq` is the rowid): stop the old processes while upgrading (docs/deployment.md).
"""

from __future__ import annotations

from alembic import op

revision = "0022_events_seq_given"
down_revision = "0021_llm_calls"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events ALTER COLUMN seq DROP DEFAULT")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('events', 'seq'), GREATEST((SELECT max(seq) FROM events),"
            " (SELECT max(seq) + 4 FROM llm_calls), (SELECT max(rolled_seq) FROM meters), 1))"
        )
        op.execute("ALTER TABLE events ALTER COLUMN seq SET DEFAULT nextval(pg_get_serial_sequence('events', 'seq'))")
