"""notification channels, rules, events (the outbox), deliveries, attempts and threshold marks

Revision ID: 0009_notifications
Revises: 0008_refold_dimensions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_notifications"
down_revision = "0008_refold_dimensions"
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notification_channels",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("custom_headers", sa.Text(), nullable=False),
        sa.Column("signing_secret", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text()),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("deleted_us", sa.BigInteger()),
    )
    op.create_table(
        "notification_rules",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("channel_ids", sa.Text(), nullable=False),
        sa.Column("feature_keys", sa.Text(), nullable=False),
        sa.Column("thresholds", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("deleted_us", sa.BigInteger()),
    )
    op.create_table(
        "notification_events",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(26)),
        sa.Column("feature_key", sa.String(255)),
        sa.Column("subject_key", sa.String(255)),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("dedup_key", sa.String(255)),
        sa.UniqueConstraint("dedup_key", name="uq_notification_events_dedup_key"),
    )
    op.create_index("ix_notification_events_created", "notification_events", ["created_us"])
    op.create_table(
        "notification_deliveries",
        sa.Column(
            "event_id",
            sa.String(26),
            sa.ForeignKey("notification_events.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("channel_id", sa.String(26), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_us", sa.BigInteger()),
        sa.Column("lease_until_us", sa.BigInteger()),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "channel_id", name="pk_notification_deliveries"),
    )
    op.create_index("ix_notification_deliveries_due", "notification_deliveries", ["state", "next_attempt_us"])
    op.create_table(
        "notification_attempts",
        sa.Column("seq", BigKey, primary_key=True, autoincrement=True),
        sa.Column(
            "event_id",
            sa.String(26),
            sa.ForeignKey("notification_events.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("channel_id", sa.String(26), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
    )
    op.create_index("ix_notification_attempts_event", "notification_attempts", ["event_id", "channel_id", "seq"])
    op.create_table(
        "notification_marks",
        sa.Column("rule_id", sa.String(26), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("threshold_key", sa.String(64), nullable=False),
        sa.Column("period_start_us", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(26), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "target", "threshold_key", "period_start_us", name="pk_notification_marks"),
    )


def downgrade() -> None:
    op.drop_table("notification_marks")
    op.drop_index("ix_notification_attempts_event", table_name="notification_attempts")
    op.drop_table("notification_attempts")
    op.drop_index("ix_notification_deliveries_due", table_name="notification_deliveries")
    op.drop_table("notification_deliveries")
    op.drop_index("ix_notification_events_created", table_name="notification_events")
    op.drop_table("notification_events")
    op.drop_table("notification_rules")
    op.drop_table("notification_channels")
