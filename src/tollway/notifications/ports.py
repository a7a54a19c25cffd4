"""The ports of notifications. Storage: tollway.adapters.sql.notifications (SQLite, PostgreSQL) and
tollway.adapters.memory.notifications (the fake), held to one contract suite. Sending:
tollway.adapters.webhooks.sender.

Invariants the store keeps:
- an event and its deliveries (one per channel, PENDING, due at once) are written in one transaction:
  the event table with its deliveries is the outbox;
- `add_event` with a `mark` stores the mark, the event and its deliveries in one transaction, or nothing
  when the mark exists (unique (rule, target, threshold, period)): a threshold fires once, however many
  workers see it at once; `add_event` with a `dedup_key` stores nothing when an event holds that key;
- a due delivery is claimed by one worker at a time (FOR UPDATE SKIP LOCKED on PostgreSQL): SENDING with
  a lease; a claim whose worker died comes back due when its lease ends, so nothing is lost by a kill.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tollway.notifications.model import (
    Attempt,
    Channel,
    DeliveryJob,
    DeliveryState,
    Event,
    EventFilter,
    Rule,
    ThresholdMark,
)


@dataclass(frozen=True)
class AttemptResult:
    """What became of a claimed delivery: the attempt, the delivery's new state, when it is tried again."""

    attempt: Attempt
    state: DeliveryState  # SUCCESS, FAILED, or PENDING (a retry at next_attempt_at)
    next_attempt_at: datetime | None
    reason: str
    disable_channel: bool = False  # the receiver answered 410 Gone


@dataclass(frozen=True)
class SendResult:
    """A receiver's answer: its status (None: no answer, a timeout or a connection that failed) and the start
    of its body (or why there was none)."""

    status_code: int | None
    body: str
    duration_ms: int


class WebhookSender(Protocol):
    async def send(self, url: str, headers: Mapping[str, str], body: bytes, *, timeout_s: float) -> SendResult:
        """POST `body` once; redirects are not followed (a 3xx is an answer like any other)."""
        ...

    async def close(self) -> None: ...


class NotificationStore(Protocol):
    # -- channels and rules (deleted ones are kept, with deleted_at) --------------------------------------
    async def save_channel(self, channel: Channel) -> None:
        """Insert or replace (by id)."""
        ...

    async def get_channel(self, channel_id: str) -> Channel | None: ...

    async def list_channels(self) -> list[Channel]:
        """Oldest first, deleted ones included."""
        ...

    async def save_rule(self, rule: Rule) -> None: ...

    async def get_rule(self, rule_id: str) -> Rule | None: ...

    async def list_rules(self) -> list[Rule]:
        """Oldest first, deleted ones included."""
        ...

    # -- events: the outbox -------------------------------------------------------------------------
    async def add_event(
        self,
        event: Event,
        channel_ids: tuple[str, ...],
        *,
        mark: ThresholdMark | None = None,
        dedup_key: str | None = None,
    ) -> bool:
        """Store the event with one PENDING delivery per channel, due at the event's creation time, in one
        transaction. False (nothing stored) when `mark` or `dedup_key` was stored before."""
        ...

    async def has_mark(self, mark: ThresholdMark) -> bool: ...

    async def get_event(self, event_id: str) -> Event | None:
        """With its deliveries and their attempts."""
        ...

    async def list_events(self, query: EventFilter) -> list[Event]:
        """Newest first, with deliveries (and their attempts)."""
        ...

    async def count_events(self, query: EventFilter) -> int:
        """How many events `list_events` would list without limit and offset."""
        ...

    async def claim_deliveries(self, *, now: datetime, limit: int, lease_s: float) -> list[DeliveryJob]:
        """Due deliveries (PENDING or RESENDING with next attempt <= now, or SENDING whose lease ran out),
        oldest first, on channels that are not disabled or deleted: each becomes SENDING until now + lease_s
        and its attempts count goes up by one."""
        ...

    async def finish_delivery(self, event_id: str, channel_id: str, result: AttemptResult) -> None:
        """Record the attempt and the delivery's new state (and disable the channel on 410), in one
        transaction."""
        ...

    async def resend(self, event_id: str, *, at: datetime) -> bool:
        """Every delivery of the event RESENDING, due at `at`, attempts from 0. False: no such event."""
        ...

    async def oldest_pending(self) -> datetime | None:
        """When the oldest delivery not yet ended (PENDING, SENDING, RESENDING) was created."""
        ...

    async def delivery_counts(self) -> Mapping[str, int]:
        """Deliveries by state."""
        ...

    async def close(self) -> None: ...
