"""invoice amounts in minor units stored exactly, however large

Revision ID: 0010_exact_minor_units
Revises: 0009_notifications

`invoices.total_minor` and `invoice_lines.amount_minor` are 64-bit integers: a flat fee of 10^17 USD or more
(accepted: prices go up to 10^18) or a usage line over a large SUM overflowed them, and the billing worker
failed on that customer every round. Each gets a text twin holding the exact value when it does not fit in
64 bits (NULL otherwise); the integer column then holds the value saturated at +/-(2^63 - 1). Adding nullable
columns changes no row, so the upgrade is instant on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_exact_minor_units"
down_revision = "0009_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("invoices", sa.Column("total_minor_exact", sa.Text(), nullable=True))
    op.add_column("invoice_lines", sa.Column("amount_minor_exact", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("invoice_lines", "amount_minor_exact")
    op.drop_column("invoices", "total_minor_exact")
