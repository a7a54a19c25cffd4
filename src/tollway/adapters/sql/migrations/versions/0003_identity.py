"""consumers, API keys and the key-index version counter

Revision ID: 0003_identity
Revises: 0002_meters_rollups
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_identity"
down_revision = "0002_meters_rollups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consumers",
        sa.Column("username", sa.String(128), primary_key=True),
        sa.Column("managed_by", sa.String(16), nullable=False),
        sa.Column("models", sa.Text()),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("name", sa.String(100)),
        sa.Column("prefix", sa.String(16)),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("models", sa.Text()),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger()),
        sa.Column("revoked_us", sa.BigInteger()),
        sa.Column("last_used_day", sa.String(10)),
        sa.UniqueConstraint("digest", name="uq_api_keys_digest"),
    )
    op.create_index("ix_api_keys_username", "api_keys", ["username", "created_us"])
    version = op.create_table(
        "identity_version",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(version, [{"name": "keys", "version": 0}])


def downgrade() -> None:
    op.drop_table("identity_version")
    op.drop_index("ix_api_keys_username", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("consumers")
