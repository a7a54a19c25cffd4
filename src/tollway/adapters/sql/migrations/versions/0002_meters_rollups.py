"""meters, subjects and rollups: user-defined meters with per-bucket partial aggregates

Revision ID: 0002_meters_rollups
Revises: 0001_events
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002_meters_rollups"
down_revision = "0001_events"
branch_labels = None
depends_on = None


def _key(name: str, type_: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, primary_key=True, autoincrement=False)


def upgrade() -> None:
    op.create_table(
        "meters",
        sa.Column("slug", sa.String(63), primary_key=True),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("managed_by", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("rolled_seq", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "subjects",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("first_seen_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "meter_rollups",
        _key("meter", sa.String(63)),
        _key("level_us", sa.BigInteger()),
        _key("bucket_us", sa.BigInteger()),
        _key("subject", sa.String(255)),
        _key("dims", sa.Text()),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Text(), nullable=False),
        sa.Column("minimum", sa.Text()),
        sa.Column("maximum", sa.Text()),
        sa.Column("latest", sa.Text()),
        sa.Column("latest_us", sa.BigInteger()),
        sa.Column("latest_seq", sa.BigInteger()),
        sa.Column("first_us", sa.BigInteger()),
    )
    op.create_index("ix_meter_rollups_subject", "meter_rollups", ["meter", "level_us", "subject", "bucket_us"])
    op.create_table(
        "meter_rollup_values",
        _key("meter", sa.String(63)),
        _key("level_us", sa.BigInteger()),
        _key("bucket_us", sa.BigInteger()),
        _key("subject", sa.String(255)),
        _key("dims", sa.Text()),
        _key("digest", sa.String(64)),
    )


def downgrade() -> None:
    op.drop_table("meter_rollup_values")
    op.drop_index("ix_meter_rollups_subject", table_name="meter_rollups")
    op.drop_table("meter_rollups")
    op.drop_table("subjects")
    op.drop_table("meters")
