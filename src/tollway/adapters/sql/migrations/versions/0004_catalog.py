"""features, plans, customers, customer subjects, subscriptions

Revision ID: 0004_catalog
Revises: 0003_identity
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_catalog"
down_revision = "0003_identity"
branch_labels = None
depends_on = None


def _partial_unique(name: str, table: str, where: str) -> None:
    op.create_index(name, table, ["key"], unique=True, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def upgrade() -> None:
    op.create_table(
        "catalog_features",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("meter_slug", sa.String(63)),
        sa.Column("managed_by", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("archived_us", sa.BigInteger()),
        sa.Column("record", sa.Text(), nullable=False),
    )
    _partial_unique("uq_catalog_features_live_key", "catalog_features", "archived_us IS NULL")
    op.create_table(
        "catalog_plans",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("managed_by", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.UniqueConstraint("key", "version", name="uq_catalog_plans_key_version"),
    )
    _partial_unique("uq_catalog_plans_draft", "catalog_plans", "status = 'draft'")
    _partial_unique("uq_catalog_plans_published", "catalog_plans", "status = 'published'")
    op.create_table(
        "catalog_customers",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("managed_by", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("deleted_us", sa.BigInteger()),
        sa.Column("record", sa.Text(), nullable=False),
    )
    _partial_unique("uq_catalog_customers_live_key", "catalog_customers", "deleted_us IS NULL")
    op.create_table(
        "catalog_customer_subjects",
        sa.Column("subject", sa.String(255), primary_key=True),
        sa.Column("customer_id", sa.String(26), sa.ForeignKey("catalog_customers.id"), nullable=False),
    )
    op.create_index("ix_catalog_customer_subjects_customer", "catalog_customer_subjects", ["customer_id"])
    op.create_table(
        "catalog_subscriptions",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("customer_id", sa.String(26), sa.ForeignKey("catalog_customers.id"), nullable=False),
        sa.Column("plan_id", sa.String(26), sa.ForeignKey("catalog_plans.id"), nullable=False),
        sa.Column("active_from_us", sa.BigInteger(), nullable=False),
        sa.Column("active_to_us", sa.BigInteger()),
        sa.Column("record", sa.Text(), nullable=False),
    )
    op.create_index("ix_catalog_subscriptions_customer", "catalog_subscriptions", ["customer_id", "active_from_us"])


def downgrade() -> None:
    op.drop_index("ix_catalog_subscriptions_customer", table_name="catalog_subscriptions")
    op.drop_table("catalog_subscriptions")
    op.drop_index("ix_catalog_customer_subjects_customer", table_name="catalog_customer_subjects")
    op.drop_table("catalog_customer_subjects")
    op.drop_index("uq_catalog_customers_live_key", table_name="catalog_customers")
    op.drop_table("catalog_customers")
    op.drop_index("uq_catalog_plans_published", table_name="catalog_plans")
    op.drop_index("uq_catalog_plans_draft", table_name="catalog_plans")
    op.drop_table("catalog_plans")
    op.drop_index("uq_catalog_features_live_key", table_name="catalog_features")
    op.drop_table("catalog_features")
