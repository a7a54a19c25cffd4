"""rollup tables WITHOUT ROWID on SQLite: the rows live in their primary key's b-tree, stored once

Revision ID: 0019_rollups_without_rowid
Revises: 0018_spend_rate_limits

A SQLite table with a composite text primary key is two b-trees: the rows by rowid and the key's
autoindex, which repeats the key columns (meter, level, subject, bucket, dims). Rollup rows are read
and merged only by that key, so WITHOUT ROWID keeps them in the key's b-tree alone: 969 -> ~560 bytes
of rollups per gateway call in bench/footprint.py. PostgreSQL tables are heaps with separate indexes:
nothing changes there. The rows are copied as they are (the batch recreate); the freed pages are given
back to the file system after the upgrade (migrate.py) on files made with auto_vacuum=INCREMENTAL.
"""

from __future__ import annotations

from alembic import op

revision = "0019_rollups_without_rowid"
down_revision = "0018_spend_rate_limits"
branch_labels = None
depends_on = None

TABLES = ("meter_rollups", "meter_rollup_values")


def _recreate(table: str, *, with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}):
        pass


def upgrade() -> None:
    for table in TABLES:
        _recreate(table, with_rowid=False)


def downgrade() -> None:
    for table in TABLES:
        _recreate(table, with_rowid=True)
