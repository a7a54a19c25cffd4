"""auto-recharge of money credits, one row per customer

Revision ID: 0015_credit_recharge
Revises: 0014_unit_grants
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_credit_recharge"
down_revision = "0014_unit_grants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credit_recharge",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("threshold_minor", sa.BigInteger(), nullable=False),
        sa.Column("recharge_to_minor", sa.BigInteger()),
        sa.Column("amount_minor", sa.BigInteger()),
        sa.Column("armed", sa.Integer(), nullable=False),
        sa.Column("crossings", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("credit_recharge")
