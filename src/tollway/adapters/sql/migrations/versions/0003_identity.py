"""consumers, API keys and the key-index version counter

Revision ID: 0003_identity
Revises: 0002_meters_rollups
"""

from __future__ import annotations

revision = "0003_identity"
down_revision = "0002_meters_rollups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
