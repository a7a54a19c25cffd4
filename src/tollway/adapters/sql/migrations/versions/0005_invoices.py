"""invoices, invoice lines, number series, billing claims, Stripe outbox and webhook events

Revision ID: 0005_invoices
Revises: 0004_catalog
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_invoices"
down_revision = "0004_catalog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("billing_key", sa.String(255), nullable=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("subscription_id", sa.String(64)),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("number", sa.String(32)),
        sa.Column("period_start_us", sa.BigInteger(), nullable=False),
        sa.Column("period_end_us", sa.BigInteger(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("issued_us", sa.BigInteger()),
        sa.Column("due_us", sa.BigInteger()),
        sa.Column("paid_us", sa.BigInteger()),
        sa.Column("voided_us", sa.BigInteger()),
        sa.Column("uncollectible_us", sa.BigInteger()),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.Column("stripe_invoice_id", sa.String(255)),
        sa.Column("stripe_status", sa.String(32)),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.UniqueConstraint("billing_key", name="uq_invoices_billing_key"),
        sa.UniqueConstraint("number", name="uq_invoices_number"),
    )
    op.create_index("ix_invoices_customer", "invoices", ["customer_id", "created_us"])
    op.create_index("ix_invoices_status", "invoices", ["status", "created_us"])
    op.create_index("ix_invoices_subscription", "invoices", ["subscription_id", "period_end_us"])
    op.create_table(
        "invoice_lines",
        sa.Column(
            "invoice_id",
            sa.String(64),
            sa.ForeignKey("invoices.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("position", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(96), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rate_card_key", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("period_start_us", sa.BigInteger(), nullable=False),
        sa.Column("period_end_us", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Text(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("feature_key", sa.String(255)),
        sa.Column("subscription_id", sa.String(64)),
        sa.Column("charge", sa.Text()),
        sa.Column("slices", sa.Text(), nullable=False),
        sa.Column("proration", sa.Text()),
        sa.Column("adjusts_invoice_id", sa.String(64)),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("stripe_invoice_item_id", sa.String(255)),
        sa.UniqueConstraint("id", name="uq_invoice_lines_id"),
    )
    op.create_index("ix_invoice_lines_adjusts", "invoice_lines", ["adjusts_invoice_id"])
    op.create_table(
        "invoice_number_series",
        sa.Column("series", sa.String(32), primary_key=True),
        sa.Column("last_number", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "billing_claims",
        sa.Column("billing_key", sa.String(255), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("claimed_until_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "invoice_outbox",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("invoice_id", sa.String(64), sa.ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_us", sa.BigInteger(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("done_us", sa.BigInteger()),
        sa.Column("last_error", sa.Text()),
        sa.UniqueConstraint("invoice_id", "kind", name="uq_invoice_outbox_invoice_kind"),
    )
    op.create_index("ix_invoice_outbox_due", "invoice_outbox", ["done_us", "next_attempt_us"])
    op.create_table(
        "stripe_webhook_events",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stripe_webhook_events")
    op.drop_index("ix_invoice_outbox_due", table_name="invoice_outbox")
    op.drop_table("invoice_outbox")
    op.drop_table("billing_claims")
    op.drop_table("invoice_number_series")
    op.drop_index("ix_invoice_lines_adjusts", table_name="invoice_lines")
    op.drop_table("invoice_lines")
    op.drop_index("ix_invoices_subscription", table_name="invoices")
    op.drop_index("ix_invoices_status", table_name="invoices")
    op.drop_index("ix_invoices_customer", table_name="invoices")
    op.drop_table("invoices")
