"""The notification tables (SQLAlchemy Core, on schema.metadata). Change them only with a migration."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from tollway.adapters.sql.schema import BigKey, metadata

notification_channels = Table(
    "notification_channels",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("type", String(16), nullable=False),
    Column("url", Text, nullable=False),
    Column("custom_headers", Text, nullable=False, comment="JSON object"),
    Column("signing_secret", Text, nullable=False, comment="whsec_..."),
    Column("disabled", Boolean, nullable=False),
    Column("disabled_reason", Text),
    Column("metadata", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("deleted_us", BigInteger),
)

notification_rules = Table(
    "notification_rules",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("type", String(64), nullable=False),
    Column("channel_ids", Text, nullable=False, comment="JSON array"),
    Column("feature_keys", Text, nullable=False, comment="JSON array"),
    Column("thresholds", Text, nullable=False, comment='JSON array of {"value": "80", "type": "PERCENT"}'),
    Column("disabled", Boolean, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("deleted_us", BigInteger),
)

notification_events = Table(
    "notification_events",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("rule_id", String(26)),
    Column("feature_key", String(255)),
    Column("subject_key", String(255)),
    Column("created_us", BigInteger, nullable=False),
    Column("data", Text, nullable=False, comment="the payload's data object, JSON"),
    Column("dedup_key", String(255), unique=True, comment="one event per key (an invoice's created, ...)"),
    Index("ix_notification_events_created", "created_us"),
)

notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("event_id", String(26), ForeignKey("notification_events.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", String(26), nullable=False),
    Column("state", String(16), nullable=False, comment="PENDING | SENDING | SUCCESS | FAILED | RESENDING"),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_us", BigInteger),
    Column("lease_until_us", BigInteger, comment="SENDING: claimed until then"),
    Column("created_us", BigInteger, nullable=False, comment="the event's creation time"),
    Column("updated_us", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    PrimaryKeyConstraint("event_id", "channel_id", name="pk_notification_deliveries"),
    Index("ix_notification_deliveries_due", "state", "next_attempt_us"),
)

notification_attempts = Table(
    "notification_attempts",
    metadata,
    Column("seq", BigKey, primary_key=True, autoincrement=True),
    Column("event_id", String(26), ForeignKey("notification_events.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", String(26), nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("status_code", Integer),
    Column("body", Text, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Index("ix_notification_attempts_event", "event_id", "channel_id", "seq"),
)

notification_marks = Table(
    "notification_marks",
    metadata,
    Column("rule_id", String(26), nullable=False),
    Column("target", String(255), nullable=False, comment="{customer id}/{feature key}"),
    Column("threshold_key", String(64), nullable=False, comment="PERCENT:80, NUMBER:1000, reset"),
    Column("period_start_us", BigInteger, nullable=False),
    Column("event_id", String(26), nullable=False),
    PrimaryKeyConstraint("rule_id", "target", "threshold_key", "period_start_us", name="pk_notification_marks"),
)
