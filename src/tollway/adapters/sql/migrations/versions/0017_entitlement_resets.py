"""manual resets of metered entitlements (POST .../entitlements/{featureKey}/reset)

Revision ID: 0017_entitlement_resets
Revises: 0016_subscription_changes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_entitlement_resets"
down_revision = "0016_subscription_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entitlement_resets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("feature_key", sa.String(255), nullable=False),
        sa.Column("effective_us", sa.BigInteger(), nullable=False, comment="the new usage period starts here"),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("retain_anchor", sa.Boolean(), nullable=False),
        sa.Column("preserve_overage", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "ix_entitlement_resets_customer", "entitlement_resets", ["customer_id", "feature_key", "effective_us"]
    )


def downgrade() -> None:
    op.drop_index("ix_entitlement_resets_customer", table_name="entitlement_resets")
    op.drop_table("entitlement_resets")
