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

meters = Table(
    "meters",
    metadata,
    Column("slug", String(63), primary_key=True),
    Column("record", Text, nullable=False, comment="the meter definition, JSON (Meter.to_record)"),
    Column("managed_by", String(16), nullable=False, comment="builtin | config | api"),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column(
        "rolled_seq", BigInteger, nullable=False, server_default="0", comment="events up to this seq are in rollups"
    ),
)

subjects = Table(
    "subjects",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("first_seen_us", BigInteger, nullable=False, comment="when the store first saw the subject"),
)

meter_rollups = Table(
    "meter_rollups",
    metadata,
    Column("meter", String(63), primary_key=True),
    Column("level_us", BigInteger, primary_key=True, comment="bucket width: minute, hour or day"),
    Column("bucket_us", BigInteger, primary_key=True, comment="bucket start, UTC micros"),
    Column("subject", String(255), primary_key=True),
    Column("dims", Text, primary_key=True, comment="the meter's groupBy values, JSON array"),
    Column("count", BigInteger, nullable=False),
    Column("total", Text, nullable=False, comment="exact decimal sum"),
    Column("minimum", Text),
    Column("maximum", Text),
    Column("latest", Text),
    Column("latest_us", BigInteger),
    Column("latest_seq", BigInteger),
    Column("first_us", BigInteger),
    Index("ix_meter_rollups_subject", "meter", "level_us", "subject", "bucket_us"),
)

meter_rollup_values = Table(
    "meter_rollup_values",
    metadata,
    Column("meter", String(63), primary_key=True),
    Column("level_us", BigInteger, primary_key=True),
    Column("bucket_us", BigInteger, primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column("dims", Text, primary_key=True),
    Column("digest", String(64), primary_key=True, comment="SHA-256 of a UNIQUE_COUNT value"),
)
