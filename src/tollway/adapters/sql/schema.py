"""The SQL schema (SQLAlchemy Core). Change it only together with a new Alembic migration."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

metadata = MetaData()

# Autoincrementing 64-bit key on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigKey = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("seq", BigKey, primary_key=True, autoincrement=True),
    Column("source", String(255), nullable=False),
    Column("id", String(255), nullable=False),
    Column("type", String(255), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("time_us", BigInteger, nullable=False, comment="event time, microseconds since the epoch, UTC"),
    Column("ingested_us", BigInteger, nullable=False, comment="when the store accepted it"),
    Column("data", Text, nullable=False, comment="the CloudEvent data object, JSON"),
    UniqueConstraint("source", "id", name="uq_events_source_id"),
    Index("ix_events_type_time", "type", "time_us"),
    Index("ix_events_type_subject_time", "type", "subject", "time_us"),
)
