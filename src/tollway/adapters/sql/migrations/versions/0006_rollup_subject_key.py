"""rollup primary keys ordered (meter, level_us, subject, bucket_us, dims): a subject's read is one index range

Revision ID: 0006_rollup_subject_key
Revises: 0005_invoices

Reads filter by meter, level, subject and a bucket range. With the key ordered (meter, level_us,
bucket_us, subject, dims), PostgreSQL without table statistics may walk every customer's buckets
through the key; ordered by subject first, the key is the one right plan whatever the statistics,
and the separate ix_meter_rollups_subject is redundant. The upserts' ON CONFLICT targets name the
same column set, which matches the key in any order.
"""

from __future__ import annotations

from alembic import op

revision = "0006_rollup_subject_key"
down_revision = "0005_invoices"
branch_labels = None
depends_on = None

NEW_ROLLUP_KEY = ["meter", "level_us", "subject", "bucket_us", "dims"]
OLD_ROLLUP_KEY = ["meter", "level_us", "bucket_us", "subject", "dims"]


def _rekey(table: str, key: list[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({', '.join(key)})")
        return
    # SQLite cannot change a primary key: copy into a new table with the new key (the batch recreate).
    with op.batch_alter_table(table, recreate="always") as batch:
        batch.create_primary_key(f"{table}_pkey", key)


def upgrade() -> None:
    op.drop_index("ix_meter_rollups_subject", table_name="meter_rollups")
    _rekey("meter_rollups", NEW_ROLLUP_KEY)
    _rekey("meter_rollup_values", [*NEW_ROLLUP_KEY, "digest"])


def downgrade() -> None:
    _rekey("meter_rollup_values", [*OLD_ROLLUP_KEY, "digest"])
    _rekey("meter_rollups", OLD_ROLLUP_KEY)
    op.create_index("ix_meter_rollups_subject", "meter_rollups", ["meter", "level_us", "subject", "bucket_us"])
