"""unit grants on metered entitlements

Revision ID: 0014_unit_grants
Revises: 0013_portal_tokens
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_unit_grants"
down_revision = "0013_portal_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unit_grants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("feature_key", sa.String(255), nullable=False),
        sa.Column("amount", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("effective_us", sa.BigInteger(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("expiration_duration", sa.String(8)),
        sa.Column("expiration_count", sa.Integer()),
        sa.Column("expires_us", sa.BigInteger()),
        sa.Column("min_rollover", sa.Text(), nullable=False),
        sa.Column("max_rollover", sa.Text()),
        sa.Column("recurrence_interval", sa.String(64)),
        sa.Column("recurrence_anchor_us", sa.BigInteger()),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("voided_us", sa.BigInteger()),
    )
    op.create_index("ix_unit_grants_customer", "unit_grants", ["customer_id", "feature_key", "created_us"])


def downgrade() -> None:
    op.drop_table("unit_grants")
