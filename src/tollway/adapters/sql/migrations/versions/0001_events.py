"""events: the usage event store, deduplicated on (source, id)

Revision ID: 0001_events
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_events"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False, comment="event time, microseconds since the epoch, UTC"),
        sa.Column("ingested_us", sa.BigInteger(), nullable=False, comment="when the store accepted it"),
        sa.Column("data", sa.Text(), nullable=False, comment="the CloudEvent data object, JSON"),
        sa.UniqueConstraint("source", "id", name="uq_events_source_id"),
    )
    op.create_index("ix_events_type_time", "events", ["type", "time_us"])
    op.create_index("ix_events_type_subject_time", "events", ["type", "subject", "time_us"])


def downgrade() -> None:
    op.drop_index("ix_events_type_subject_time", table_name="events")
    op.drop_index("ix_events_type_time", table_name="events")
    op.drop_table("events")
