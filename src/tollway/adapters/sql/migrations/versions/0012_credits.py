"""money credits: grants and their ledger

Revision ID: 0012_credits
Revises: 0011_spend_budgets
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_credits"
down_revision = "0011_spend_budgets"
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "credit_grants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("funding_method", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("effective_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_after", sa.String(64)),
        sa.Column("expires_us", sa.BigInteger()),
        sa.Column("grant_key", sa.String(255)),
        sa.Column("features", sa.Text()),
        sa.Column("price_minor", sa.BigInteger()),
        sa.Column("invoice_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("voided_us", sa.BigInteger()),
        sa.Column("expired_us", sa.BigInteger()),
        sa.UniqueConstraint("customer_id", "grant_key", name="uq_credit_grants_key"),
    )
    op.create_index("ix_credit_grants_customer", "credit_grants", ["customer_id", "created_us"])
    op.create_table(
        "credit_ledger",
        sa.Column("seq", BigKey, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("balance_before_minor", sa.BigInteger(), nullable=False),
        sa.Column("balance_after_minor", sa.BigInteger(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("invoice_id", sa.String(64)),
        sa.Column("invoice_line_id", sa.String(96)),
        sa.Column("once_key", sa.String(200)),
        sa.UniqueConstraint("id", name="uq_credit_ledger_id"),
        sa.UniqueConstraint("once_key", name="uq_credit_ledger_once"),
        sa.UniqueConstraint("grant_id", "invoice_line_id", name="uq_credit_ledger_line"),
    )
    op.create_index("ix_credit_ledger_customer", "credit_ledger", ["customer_id", "seq"])
    op.create_index("ix_credit_ledger_grant", "credit_ledger", ["grant_id"])


def downgrade() -> None:
    op.drop_table("credit_ledger")
    op.drop_table("credit_grants")
