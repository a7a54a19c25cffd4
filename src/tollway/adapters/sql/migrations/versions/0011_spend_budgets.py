"""spend control's budgets

Revision ID: 0011_spend_budgets
Revises: 0010_exact_minor_units
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_spend_budgets"
down_revision = "0010_exact_minor_units"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spend_budgets",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("limit_amount", sa.Text(), nullable=False),
        sa.Column("window", sa.String(16), nullable=False),
        sa.Column("hard", sa.Boolean(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("managed_by", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spend_budgets")
