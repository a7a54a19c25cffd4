"""customer portal tokens

Revision ID: 0013_portal_tokens
Revises: 0012_credits
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_portal_tokens"
down_revision = "0012_credits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_tokens",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("digest", sa.String(80), nullable=False, unique=True),
        sa.Column("subject", sa.String(255)),
        sa.Column("customer_key", sa.String(255)),
        sa.Column("allowed_meters", sa.Text()),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("invalidated_us", sa.BigInteger()),
    )


def downgrade() -> None:
    op.drop_table("portal_tokens")
