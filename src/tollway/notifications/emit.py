"""The door other domains use to notify: `Notifier.emit(type, data, ...)`.

Every active rule of the event type gets one event, delivered to its channels from the outbox like the others.
Pass a `dedup_key` that names the occurrence (e.g. "stripe:{event id}") so that a repeat stores nothing: a crash
between the state change and the emit, retried, then notifies once. Stripe's invoice.payment_failed comes
this way; credits (credits.balance.low, credits.expiring, credits.topup) are meant to. (Budget events are found
by the notification worker, `tollway.notifications.budgets`, under threshold marks as entitlement thresholds
are; events that must be written in the same transaction as their cause use the store's `add_event` inside that
cause's write instead, as the invoice outbox and the threshold marks do.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Notifier(Protocol):
    async def emit(
        self,
        event_type: str,
        data: Mapping[str, Any],
        *,
        dedup_key: str | None = None,
        feature_key: str | None = None,
        subject_key: str | None = None,
    ) -> int:
        """Enqueue one event per active rule of `event_type`; returns how many were stored."""
        ...


class NullNotifier:
    """Notifies nobody (notifications not wired, e.g. a CLI command)."""

    async def emit(
        self,
        event_type: str,
        data: Mapping[str, Any],
        *,
        dedup_key: str | None = None,
        feature_key: str | None = None,
        subject_key: str | None = None,
    ) -> int:
        return 0
