"""spend control's rate limits, and budgets that degrade a call instead of refusing it

Revision ID: 0018_spend_rate_limits
Revises: 0017_entitlement_resets
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_spend_rate_limits"
down_revision = "0017_entitlement_resets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spend_rate_limits",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("limit_amount", sa.Text(), nullable=False),
        sa.Column("window", sa.String(16)),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("managed_by", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
    )
    with op.batch_alter_table("spend_budgets") as batch:
        batch.add_column(sa.Column("on_exceeded", sa.String(16), nullable=False, server_default="refuse"))
        batch.add_column(sa.Column("route_to", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("spend_budgets") as batch:
        batch.drop_column("route_to")
        batch.drop_column("on_exceeded")
    op.drop_table("spend_rate_limits")
