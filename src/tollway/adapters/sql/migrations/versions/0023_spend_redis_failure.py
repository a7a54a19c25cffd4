"""spend control: what a budget or rate limit does when Redis is unreachable (open | closed; NULL: the default)

Revision ID: 0023_spend_redis_failure
Revises: 0022_events_seq_given
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023_spend_redis_failure"
down_revision = "0022_events_seq_given"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("spend_budgets", "spend_rate_limits"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("on_redis_failure", sa.String(8)))


def downgrade() -> None:
    for table in ("spend_rate_limits", "spend_budgets"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("on_redis_failure")
