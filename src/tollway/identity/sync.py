"""Which consumer rows a config sync creates, updates and removes (pure; both store adapters use it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from tollway.identity.consumers import Consumer


@dataclass(frozen=True)
class SyncPlan:
    insert: tuple[Consumer, ...]
    update: tuple[Consumer, ...]
    remove: tuple[str, ...]


def plan_sync(current: Sequence[Consumer], desired: Sequence[Consumer], at: datetime) -> SyncPlan:
    by_name = {c.username: c for c in current}
    wanted = {c.username for c in desired}
    insert: list[Consumer] = []
    update: list[Consumer] = []
    for consumer in desired:
        kept = by_name.get(consumer.username)
        if kept is None:
            insert.append(replace(consumer, managed_by="config", created_at=at, updated_at=at))
        elif (kept.managed_by, kept.models, dict(kept.metadata)) != (
            "config",
            consumer.models,
            dict(consumer.metadata),
        ):
            update.append(
                replace(kept, managed_by="config", models=consumer.models, metadata=consumer.metadata, updated_at=at)
            )
    remove = tuple(sorted(c.username for c in current if c.managed_by == "config" and c.username not in wanted))
    return SyncPlan(insert=tuple(insert), update=tuple(update), remove=remove)
