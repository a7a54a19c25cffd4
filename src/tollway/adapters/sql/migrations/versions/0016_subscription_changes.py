"""the catalog's subscription change journal (subscription notifications written with the change)

Revision ID: 0016_subscription_changes
Revises: 0015_credit_recharge
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_subscription_changes"
down_revision = "0015_credit_recharge"
branch_labels = None
depends_on = None
BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "catalog_subscription_changes",
        sa.Column("seq", BigKey, primary_key=True, autoincrement=True, comment="the order the changes were written in"),
        sa.Column("id", sa.String(26), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False, comment="created | changed | canceled"),
        sa.Column("subscription_id", sa.String(26), nullable=False),
        sa.Column("related_id", sa.String(26), comment="changed: the subscription replacing it"),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("done_us", sa.BigInteger(), comment="when the notification worker completed it"),
    )
    op.create_index("ix_catalog_subscription_changes_pending", "catalog_subscription_changes", ["done_us", "seq"])


def downgrade() -> None:
    op.drop_index("ix_catalog_subscription_changes_pending", table_name="catalog_subscription_changes")
    op.drop_table("catalog_subscription_changes")
