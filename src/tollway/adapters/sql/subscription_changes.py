"""The catalog's subscription change journal (table `catalog_subscription_changes`, migration 0016): written by
SqlCatalogStore.update_subscriptions in the transaction of the write, read and completed by the notification
worker (subscription.created / changed / canceled). Change the table only with a migration."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import BigInteger, Column, Connection, Index, String, Table, select, update

from tollway.adapters.sql.schema import BigKey, metadata
from tollway.billing.subscription_changes import ChangeKind, SubscriptionChange, changes_of
from tollway.billing.subscriptions import Subscription
from tollway.ids import new_id
from tollway.metering.events import from_micros, to_micros

subscription_changes = Table(
    "catalog_subscription_changes",
    metadata,
    Column("seq", BigKey, primary_key=True, autoincrement=True, comment="the order the changes were written in"),
    Column("id", String(26), nullable=False, unique=True),
    Column("kind", String(16), nullable=False, comment="created | changed | canceled"),
    Column("subscription_id", String(26), nullable=False),
    Column("related_id", String(26), comment="changed: the subscription replacing it"),
    Column("at_us", BigInteger, nullable=False),
    Column("done_us", BigInteger, comment="when the notification worker completed it"),
    Index("ix_catalog_subscription_changes_pending", "done_us", "seq"),
)


def record_changes(
    connection: Connection,
    before: dict[str, Subscription],
    changed: Sequence[Subscription],
    added: Sequence[Subscription],
    now: datetime,
) -> None:
    """Inside the write's transaction: one journal row per change it makes."""
    rows = [
        {
            "id": new_id(now),
            "kind": kind,
            "subscription_id": subscription_id,
            "related_id": related,
            "at_us": to_micros(now),
            "done_us": None,
        }
        for kind, subscription_id, related in changes_of(before, changed, added)
    ]
    if rows:
        connection.execute(subscription_changes.insert(), rows)


def pending(connection: Connection, limit: int) -> list[SubscriptionChange]:
    query = (
        select(subscription_changes)
        .where(subscription_changes.c.done_us.is_(None))
        .order_by(subscription_changes.c.seq)
        .limit(limit)
    )
    return [
        SubscriptionChange(row.id, _kind(row.kind), row.subscription_id, row.related_id, from_micros(row.at_us))
        for row in connection.execute(query)
    ]


def complete(connection: Connection, ids: Sequence[str], at: datetime) -> None:
    if ids:
        connection.execute(
            update(subscription_changes)
            .where(subscription_changes.c.id.in_(list(ids)), subscription_changes.c.done_us.is_(None))
            .values(done_us=to_micros(at))
        )


KINDS: dict[str, ChangeKind] = {"created": "created", "changed": "changed", "canceled": "canceled"}


def _kind(text: str) -> ChangeKind:
    return KINDS[text]
