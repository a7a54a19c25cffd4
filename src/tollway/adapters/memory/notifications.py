"""MemoryNotificationStore: the NotificationStore port in memory (tests; one process)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from tollway.notifications.model import (
    Attempt,
    Channel,
    Delivery,
    DeliveryJob,
    Event,
    EventFilter,
    Rule,
    ThresholdMark,
)
from tollway.notifications.ports import AttemptResult

OPEN = ("PENDING", "SENDING", "RESENDING")


def matches(event: Event, query: EventFilter) -> bool:
    """Whether an event (with its deliveries) passes a filter: every given criterion holds."""
    if query.rule_ids and event.rule_id not in query.rule_ids:
        return False
    if (query.channel_ids or query.states) and not any(
        (not query.channel_ids or d.channel_id in query.channel_ids) and (not query.states or d.state in query.states)
        for d in event.deliveries
    ):
        return False  # one delivery meets both: to that channel, in that state
    if query.feature_keys and event.feature_key not in query.feature_keys:
        return False
    if query.subject_keys and event.subject_key not in query.subject_keys:
        return False
    if query.start is not None and event.created_at < query.start:
        return False
    return not (query.end is not None and event.created_at >= query.end)


class MemoryNotificationStore:
    def __init__(self) -> None:
        self._channels: dict[str, Channel] = {}
        self._rules: dict[str, Rule] = {}
        self._events: dict[str, Event] = {}
        self._deliveries: dict[tuple[str, str], Delivery] = {}
        self._leases: dict[tuple[str, str], datetime] = {}
        self._marks: set[ThresholdMark] = set()
        self._dedup: set[str] = set()
        self._lock = asyncio.Lock()

    async def save_channel(self, channel: Channel) -> None:
        self._channels[channel.id] = channel

    async def get_channel(self, channel_id: str) -> Channel | None:
        return self._channels.get(channel_id)

    async def list_channels(self) -> list[Channel]:
        return sorted(self._channels.values(), key=lambda c: (c.created_at, c.id))

    async def save_rule(self, rule: Rule) -> None:
        self._rules[rule.id] = rule

    async def get_rule(self, rule_id: str) -> Rule | None:
        return self._rules.get(rule_id)

    async def list_rules(self) -> list[Rule]:
        return sorted(self._rules.values(), key=lambda r: (r.created_at, r.id))

    async def add_event(
        self,
        event: Event,
        channel_ids: tuple[str, ...],
        *,
        mark: ThresholdMark | None = None,
        dedup_key: str | None = None,
    ) -> bool:
        async with self._lock:
            if (mark is not None and mark in self._marks) or (dedup_key is not None and dedup_key in self._dedup):
                return False
            if mark is not None:
                self._marks.add(mark)
            if dedup_key is not None:
                self._dedup.add(dedup_key)
            self._events[event.id] = replace(event, deliveries=())
            for channel_id in dict.fromkeys(channel_ids):
                self._deliveries[(event.id, channel_id)] = Delivery(
                    event.id, channel_id, "PENDING", 0, event.created_at, event.created_at
                )
            return True

    async def has_mark(self, mark: ThresholdMark) -> bool:
        return mark in self._marks

    def _with_deliveries(self, event: Event) -> Event:
        deliveries = tuple(d for (event_id, _), d in sorted(self._deliveries.items()) if event_id == event.id)
        return replace(event, deliveries=deliveries)

    async def get_event(self, event_id: str) -> Event | None:
        event = self._events.get(event_id)
        return None if event is None else self._with_deliveries(event)

    async def list_events(self, query: EventFilter) -> list[Event]:
        events = [self._with_deliveries(e) for e in self._events.values()]
        found = sorted((e for e in events if matches(e, query)), key=lambda e: (e.created_at, e.id), reverse=True)
        found = found[query.offset :]
        return found[: query.limit] if query.limit is not None else found

    async def count_events(self, query: EventFilter) -> int:
        return len([e for e in self._events.values() if matches(self._with_deliveries(e), query)])

    def _due(self, key: tuple[str, str], delivery: Delivery, now: datetime) -> bool:
        channel = self._channels.get(delivery.channel_id)
        if channel is None or channel.disabled or channel.deleted_at is not None:
            return False
        if delivery.state == "SENDING":
            return self._leases.get(key, now) <= now
        return (
            delivery.state in ("PENDING", "RESENDING")
            and delivery.next_attempt_at is not None
            and delivery.next_attempt_at <= now
        )

    async def claim_deliveries(self, *, now: datetime, limit: int, lease_s: float) -> list[DeliveryJob]:
        async with self._lock:
            due = sorted(
                (key for key, d in self._deliveries.items() if self._due(key, d, now)),
                key=lambda k: (self._deliveries[k].next_attempt_at or now, self._events[k[0]].created_at, k),
            )[:limit]
            jobs: list[DeliveryJob] = []
            for key in due:
                delivery = self._deliveries[key]
                claimed = replace(delivery, state="SENDING", attempts=delivery.attempts + 1, updated_at=now)
                self._deliveries[key] = claimed
                self._leases[key] = now + timedelta(seconds=lease_s)
                jobs.append(DeliveryJob(self._events[key[0]], self._channels[key[1]], claimed.attempts))
            return jobs

    async def finish_delivery(self, event_id: str, channel_id: str, result: AttemptResult) -> None:
        key = (event_id, channel_id)
        delivery = self._deliveries[key]
        history: tuple[Attempt, ...] = (*delivery.history, result.attempt)
        self._deliveries[key] = replace(
            delivery,
            state=result.state,
            next_attempt_at=result.next_attempt_at,
            updated_at=result.attempt.at,
            reason=result.reason,
            history=history,
        )
        self._leases.pop(key, None)
        if result.disable_channel and channel_id in self._channels:
            channel = self._channels[channel_id]
            self._channels[channel_id] = replace(
                channel, disabled=True, disabled_reason=result.reason, updated_at=result.attempt.at
            )

    async def resend(self, event_id: str, *, at: datetime) -> bool:
        if event_id not in self._events:
            return False
        for key, delivery in self._deliveries.items():
            if key[0] == event_id:
                self._deliveries[key] = replace(
                    delivery, state="RESENDING", attempts=0, next_attempt_at=at, updated_at=at, reason="resend"
                )
        return True

    async def oldest_pending(self) -> datetime | None:
        times = [self._events[k[0]].created_at for k, d in self._deliveries.items() if d.state in OPEN]
        return min(times, default=None)

    async def delivery_counts(self) -> Mapping[str, int]:
        counts: dict[str, int] = {}
        for delivery in self._deliveries.values():
            counts[delivery.state] = counts.get(delivery.state, 0) + 1
        return counts

    async def close(self) -> None:
        return
