"""features, plans, customers, customer subjects, subscriptions

Revision ID: 0004_catalog
Revises: 0003_identity
"""

from __future__ import annotations

revision = "0004_catalog"
down_revision = "0003_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
