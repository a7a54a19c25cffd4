"""llm_calls: one row per gateway call, its CloudEvents derived on read (adapters/sql/calls.py)

Revision ID: 0021_llm_calls
Revises: 0020_events_key_hash

A gateway call was stored as ~3.3 `events` rows (one `llm.tokens` per token type used, one
`llm.request`), each with the call's shared fields repeated in a JSON `data`: 2,243 bytes per call on
SQLite, 3,484 on PostgreSQL (bench/footprint.py). Now one `llm_calls` row holds the token counts as
integers, the cost texts and a `shape` id for the fields many calls share (model, provider, route,
status, flags: `llm_call_shapes`, stored once); readers see the same CloudEvents, derived in SQL
(adapters/sql/event_rows.py). Additive: events stored before stay in `events` and are read as before.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from tollway.adapters.sql.event_keys import key_hash
from tollway.adapters.sql.event_rows import Where, calls_sql

revision = "0021_llm_calls"
down_revision = "0020_events_key_hash"
branch_labels = None
depends_on = None

CHUNK = 20_000  # derived events moved per statement by a downgrade
BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "llm_call_shapes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("requested_model", sa.String(255), nullable=False),
        sa.Column("upstream_model", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(255), nullable=False),
        sa.Column("route", sa.String(255), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("flags", sa.Integer, nullable=False, comment="1 streamed, 2 partial, 4 estimated, 8 interrupted"),
        sa.UniqueConstraint(
            "model",
            "requested_model",
            "upstream_model",
            "provider",
            "route",
            "status_code",
            "flags",
            name="uq_llm_call_shapes",
        ),
    )
    op.create_table(
        "llm_calls",
        sa.Column(
            "seq", BigKey, primary_key=True, autoincrement=False, comment="first of the call's 5 sequence numbers"
        ),
        sa.Column(
            "key_hash", sa.Integer, nullable=False, comment="CRC-32 of the request id, signed (calls.request_hash)"
        ),
        sa.Column("request_id", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("stored_us", sa.BigInteger, nullable=False),
        sa.Column("shape", sa.Integer, nullable=False, comment="llm_call_shapes.id"),
        sa.Column("input", sa.Integer, nullable=False),
        sa.Column("output", sa.Integer, nullable=False),
        sa.Column("cache_read", sa.Integer, nullable=False),
        sa.Column("cache_write", sa.Integer, nullable=False),
        sa.Column("reasoning", sa.Integer, nullable=False),
        sa.Column("cost_input", sa.Text),
        sa.Column("cost_output", sa.Text),
        sa.Column("cost_cache_read", sa.Text),
        sa.Column("cost_cache_write", sa.Text),
        sa.Column("cost_total", sa.Text),
        sa.Column("duration_ms", sa.Integer),
    )
    op.create_index("ix_llm_calls_key_hash", "llm_calls", ["key_hash"])
    op.create_index("ix_llm_calls_time", "llm_calls", ["time_us"])
    op.create_index("ix_llm_calls_subject_time", "llm_calls", ["subject", "time_us"])


def downgrade() -> None:
    """The calls' events go back into `events` as they are read now (same sequence numbers), then the
    tables go: no usage is lost by a downgrade."""
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    after = -1
    while True:
        params: dict[str, Any] = {}
        derived = calls_sql(postgres, Where(seq_after=after), params)
        mark = "%(n)s" if postgres else ":n"
        rows = bind.exec_driver_sql(
            f"SELECT * FROM ({derived}) d ORDER BY seq LIMIT {mark}", {**params, "n": CHUNK}
        ).all()
        if not rows:
            break
        insert = sa.text(
            "INSERT INTO events (seq, source, id, type, subject, time_us, stored_us, data, key_hash)"
            " VALUES (:seq, :source, :id, :type, :subject, :time_us, :stored_us, :data, :key_hash)"
        )
        bind.execute(insert, [{**row._mapping, "key_hash": key_hash(row.source, row.id)} for row in rows])
        after = int(rows[-1].seq)
    if postgres:  # the sequence numbers were given by the writer: the column's own sequence goes on past them
        op.execute(
            "SELECT setval(pg_get_serial_sequence('events', 'seq'), GREATEST((SELECT max(seq) FROM events),"
            " (SELECT max(rolled_seq) FROM meters), 1))"
        )
    op.drop_table("llm_calls")
    op.drop_table("llm_call_shapes")
