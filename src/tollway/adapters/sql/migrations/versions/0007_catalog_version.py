"""a version row for the catalog, bumped by every catalog write: caches of catalog reads check it

Revision ID: 0007_catalog_version
Revises: 0006_rollup_subject_key

The row lives in the version table the key directory already polls (one row per name). Inserted here,
once, so that writers only ever UPDATE it: two first writers racing can never both insert it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_catalog_version"
down_revision = "0006_rollup_subject_key"
branch_labels = None
depends_on = None

VERSION = sa.table("identity_version", sa.column("name", sa.String), sa.column("version", sa.BigInteger))


def upgrade() -> None:
    op.bulk_insert(VERSION, [{"name": "catalog", "version": 0}])


def downgrade() -> None:
    op.execute(VERSION.delete().where(VERSION.c.name == "catalog"))
