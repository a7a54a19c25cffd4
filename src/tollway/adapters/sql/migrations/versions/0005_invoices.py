"""invoices, invoice lines, number series, Stripe outbox and webhook events

Revision ID: 0005_invoices
Revises: 0004_catalog
"""

from __future__ import annotations

revision = "0005_invoices"
down_revision = "0004_catalog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
