"""fold again every meter with two or more groupBy dimensions: its backfilled rollups may be mislabelled

Revision ID: 0008_refold_dimensions
Revises: 0007_catalog_version

Rollup keys hold a meter's dimension values by position. Before this revision a meter created over
stored events was backfilled in the order its groupBy was written, while every later fold read the
stored definition, whose groupBy is sorted by name: with the names out of alphabetical order, the
backfilled buckets carried each value under another dimension's name. The order is now always the
sorted one; this drops the rollups of every meter that could be affected and sets its watermark back
to the start, so the rollup worker folds its events again, in steps (queries read the raw events past
the watermark meanwhile, so answers are right at once, only slower until the worker catches up).
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0008_refold_dimensions"
down_revision = "0007_catalog_version"
branch_labels = None
depends_on = None

METERS = sa.table("meters", sa.column("slug", sa.String), sa.column("record", sa.Text), sa.column("rolled_seq"))
ROLLUPS = sa.table("meter_rollups", sa.column("meter", sa.String))
VALUES = sa.table("meter_rollup_values", sa.column("meter", sa.String))


def upgrade() -> None:
    bind = op.get_bind()
    for slug, record in bind.execute(sa.select(METERS.c.slug, METERS.c.record)).all():
        if len(json.loads(record).get("groupBy") or {}) < 2:
            continue
        bind.execute(ROLLUPS.delete().where(ROLLUPS.c.meter == slug))
        bind.execute(VALUES.delete().where(VALUES.c.meter == slug))
        bind.execute(METERS.update().where(METERS.c.slug == slug).values(rolled_seq=0))


def downgrade() -> None:
    """Nothing to undo: the rollups were derived data, folded again from the events."""
