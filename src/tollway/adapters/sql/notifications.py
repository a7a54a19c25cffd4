"""SqlNotificationStore: the NotificationStore port on SQLite or PostgreSQL (blocking calls in threads).

The events table with its deliveries is the outbox: an event and its deliveries are inserted in one
transaction, under the threshold mark (primary key (rule, target, threshold, period)) or the dedup key that
makes it happen once. Workers claim due deliveries with `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite has
one writer, taken up front with BEGIN IMMEDIATE), so two workers never send the same attempt at once; a
claim is a lease, so a worker killed mid-delivery leaves its deliveries due again when the lease ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, and_, exists, func, or_, select, update

from tollway.adapters.sql.notification_schema import (
    notification_attempts,
    notification_channels,
    notification_deliveries,
    notification_events,
    notification_marks,
    notification_rules,
)
from tollway.adapters.sql.transactions import Transactions
from tollway.metering.events import from_micros, to_micros
from tollway.notifications.model import (
    Attempt,
    Channel,
    Delivery,
    DeliveryJob,
    Event,
    EventFilter,
    Rule,
    Threshold,
    ThresholdMark,
)
from tollway.notifications.ports import AttemptResult

T = TypeVar("T")
OPEN = ("PENDING", "SENDING", "RESENDING")
CHUNK = 500


def _time(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


def _channel(row: Any) -> Channel:
    return Channel(
        id=row.id,
        name=row.name,
        type=row.type,
        url=row.url,
        custom_headers=orjson.loads(row.custom_headers),
        signing_secret=row.signing_secret,
        disabled=bool(row.disabled),
        disabled_reason=row.disabled_reason,
        metadata=orjson.loads(row.metadata),
        created_at=from_micros(row.created_us),
        updated_at=from_micros(row.updated_us),
        deleted_at=_time(row.deleted_us),
    )


def _rule(row: Any) -> Rule:
    return Rule(
        id=row.id,
        name=row.name,
        type=row.type,
        channel_ids=tuple(orjson.loads(row.channel_ids)),
        feature_keys=tuple(orjson.loads(row.feature_keys)),
        thresholds=tuple(Threshold(Decimal(t["value"]), t["type"]) for t in orjson.loads(row.thresholds)),
        disabled=bool(row.disabled),
        metadata=orjson.loads(row.metadata),
        created_at=from_micros(row.created_us),
        updated_at=from_micros(row.updated_us),
        deleted_at=_time(row.deleted_us),
    )


def _event(row: Any, deliveries: tuple[Delivery, ...] = ()) -> Event:
    return Event(
        id=row.id,
        type=row.type,
        created_at=from_micros(row.created_us),
        data=orjson.loads(row.data),
        rule_id=row.rule_id,
        feature_key=row.feature_key,
        subject_key=row.subject_key,
        deliveries=deliveries,
    )


class SqlNotificationStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sql = Transactions(engine, "notification store")
        self._postgres = self._sql.postgres
        self._insert, self._tx, self._read = self._sql.insert, self._sql.write, self._sql.read

    async def _write(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.to_thread(self._tx, work)

    async def _query(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.to_thread(self._read, work)

    # -- channels and rules ---------------------------------------------------------------------

    def _upsert(self, table: Any, values: dict[str, Any]) -> Callable[[Connection], None]:
        def work(connection: Connection) -> None:
            statement = self._insert(table).values(**values)
            changed = {k: statement.excluded[k] for k in values if k != "id"}
            connection.execute(statement.on_conflict_do_update(index_elements=["id"], set_=changed))

        return work

    async def save_channel(self, channel: Channel) -> None:
        values = {
            "id": channel.id,
            "name": channel.name,
            "type": channel.type,
            "url": channel.url,
            "custom_headers": orjson.dumps(channel.custom_headers).decode(),
            "signing_secret": channel.signing_secret,
            "disabled": channel.disabled,
            "disabled_reason": channel.disabled_reason,
            "metadata": orjson.dumps(channel.metadata).decode(),
            "created_us": to_micros(channel.created_at),
            "updated_us": to_micros(channel.updated_at),
            "deleted_us": None if channel.deleted_at is None else to_micros(channel.deleted_at),
        }
        await self._write(self._upsert(notification_channels, values))

    async def get_channel(self, channel_id: str) -> Channel | None:
        query = select(notification_channels).where(notification_channels.c.id == channel_id)
        row = await self._query(lambda c: c.execute(query).first())
        return None if row is None else _channel(row)

    async def list_channels(self) -> list[Channel]:
        query = select(notification_channels).order_by(notification_channels.c.created_us, notification_channels.c.id)
        return [_channel(row) for row in await self._query(lambda c: c.execute(query).all())]

    async def save_rule(self, rule: Rule) -> None:
        values = {
            "id": rule.id,
            "name": rule.name,
            "type": rule.type,
            "channel_ids": orjson.dumps(list(rule.channel_ids)).decode(),
            "feature_keys": orjson.dumps(list(rule.feature_keys)).decode(),
            "thresholds": orjson.dumps([{"value": str(t.value), "type": t.type} for t in rule.thresholds]).decode(),
            "disabled": rule.disabled,
            "metadata": orjson.dumps(rule.metadata).decode(),
            "created_us": to_micros(rule.created_at),
            "updated_us": to_micros(rule.updated_at),
            "deleted_us": None if rule.deleted_at is None else to_micros(rule.deleted_at),
        }
        await self._write(self._upsert(notification_rules, values))

    async def get_rule(self, rule_id: str) -> Rule | None:
        query = select(notification_rules).where(notification_rules.c.id == rule_id)
        row = await self._query(lambda c: c.execute(query).first())
        return None if row is None else _rule(row)

    async def list_rules(self) -> list[Rule]:
        query = select(notification_rules).order_by(notification_rules.c.created_us, notification_rules.c.id)
        return [_rule(row) for row in await self._query(lambda c: c.execute(query).all())]

    # -- events ---------------------------------------------------------------------------------

    async def add_event(
        self,
        event: Event,
        channel_ids: tuple[str, ...],
        *,
        mark: ThresholdMark | None = None,
        dedup_key: str | None = None,
    ) -> bool:
        created_us = to_micros(event.created_at)

        def work(connection: Connection) -> bool:
            if mark is not None:
                inserted = connection.execute(
                    self._insert(notification_marks)
                    .values(
                        rule_id=mark.rule_id,
                        target=mark.target,
                        threshold_key=mark.threshold_key,
                        period_start_us=to_micros(mark.period_start),
                        event_id=event.id,
                    )
                    .on_conflict_do_nothing()
                    .returning(notification_marks.c.event_id)
                ).first()
                if inserted is None:
                    return False
            statement = self._insert(notification_events).values(
                id=event.id,
                type=event.type,
                rule_id=event.rule_id,
                feature_key=event.feature_key,
                subject_key=event.subject_key,
                created_us=created_us,
                data=orjson.dumps(event.data).decode(),
                dedup_key=dedup_key,
            )
            if dedup_key is not None:
                statement = statement.on_conflict_do_nothing(index_elements=["dedup_key"])
            if connection.execute(statement.returning(notification_events.c.id)).first() is None:
                connection.rollback()
                return False
            rows = [
                {
                    "event_id": event.id,
                    "channel_id": channel_id,
                    "state": "PENDING",
                    "attempts": 0,
                    "next_attempt_us": created_us,
                    "lease_until_us": None,
                    "created_us": created_us,
                    "updated_us": created_us,
                    "reason": "",
                }
                for channel_id in dict.fromkeys(channel_ids)
            ]
            if rows:
                connection.execute(notification_deliveries.insert(), rows)
            return True

        return await self._write(work)

    async def has_mark(self, mark: ThresholdMark) -> bool:
        query = select(notification_marks.c.event_id).where(
            notification_marks.c.rule_id == mark.rule_id,
            notification_marks.c.target == mark.target,
            notification_marks.c.threshold_key == mark.threshold_key,
            notification_marks.c.period_start_us == to_micros(mark.period_start),
        )
        return await self._query(lambda c: c.execute(query).first() is not None)

    @staticmethod
    def _deliveries(connection: Connection, event_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        found: dict[str, list[Delivery]] = {event_id: [] for event_id in event_ids}
        attempts: dict[tuple[str, str], list[Attempt]] = {}
        for start in range(0, len(event_ids), CHUNK):
            chunk = list(event_ids[start : start + CHUNK])
            for row in connection.execute(
                select(notification_attempts)
                .where(notification_attempts.c.event_id.in_(chunk))
                .order_by(notification_attempts.c.seq)
            ):
                attempts.setdefault((row.event_id, row.channel_id), []).append(
                    Attempt(
                        at=from_micros(row.at_us),
                        state=row.state,
                        status_code=row.status_code,
                        body=row.body,
                        duration_ms=row.duration_ms,
                        url=row.url,
                    )
                )
            for row in connection.execute(
                select(notification_deliveries)
                .where(notification_deliveries.c.event_id.in_(chunk))
                .order_by(notification_deliveries.c.event_id, notification_deliveries.c.channel_id)
            ):
                found[row.event_id].append(
                    Delivery(
                        event_id=row.event_id,
                        channel_id=row.channel_id,
                        state=row.state,
                        attempts=row.attempts,
                        next_attempt_at=_time(row.next_attempt_us),
                        updated_at=from_micros(row.updated_us),
                        reason=row.reason,
                        history=tuple(attempts.get((row.event_id, row.channel_id), ())),
                    )
                )
        return found

    async def get_event(self, event_id: str) -> Event | None:
        def work(connection: Connection) -> Event | None:
            row = connection.execute(select(notification_events).where(notification_events.c.id == event_id)).first()
            if row is None:
                return None
            return _event(row, tuple(self._deliveries(connection, [row.id])[row.id]))

        return await self._query(work)

    @staticmethod
    def _filtered(query: EventFilter, statement: Any) -> Any:
        events, deliveries = notification_events, notification_deliveries
        if query.rule_ids:
            statement = statement.where(events.c.rule_id.in_(query.rule_ids))
        if query.feature_keys:
            statement = statement.where(events.c.feature_key.in_(query.feature_keys))
        if query.subject_keys:
            statement = statement.where(events.c.subject_key.in_(query.subject_keys))
        if query.start is not None:
            statement = statement.where(events.c.created_us >= to_micros(query.start))
        if query.end is not None:
            statement = statement.where(events.c.created_us < to_micros(query.end))
        conditions = []
        if query.channel_ids:
            conditions.append(deliveries.c.channel_id.in_(query.channel_ids))
        if query.states:
            conditions.append(deliveries.c.state.in_(query.states))
        if conditions:  # one delivery meets them all: to that channel, in that state
            statement = statement.where(exists().where(and_(deliveries.c.event_id == events.c.id, *conditions)))
        return statement

    async def list_events(self, query: EventFilter) -> list[Event]:
        events = notification_events
        statement = self._filtered(query, select(events).order_by(events.c.created_us.desc(), events.c.id.desc()))
        if query.limit is not None:
            statement = statement.limit(query.limit)
        if query.offset:
            statement = statement.offset(query.offset)

        def work(connection: Connection) -> list[Event]:
            rows = connection.execute(statement).all()
            found = self._deliveries(connection, [row.id for row in rows])
            return [_event(row, tuple(found[row.id])) for row in rows]

        return await self._query(work)

    async def count_events(self, query: EventFilter) -> int:
        statement = self._filtered(query, select(func.count()).select_from(notification_events))
        return int(await self._query(lambda c: c.execute(statement).scalar_one()))

    # -- delivery -------------------------------------------------------------------------------

    async def claim_deliveries(self, *, now: datetime, limit: int, lease_s: float) -> list[DeliveryJob]:
        now_us = to_micros(now)
        until_us = to_micros(now + timedelta(seconds=lease_s))
        d, ch = notification_deliveries, notification_channels
        due = or_(
            and_(d.c.state.in_(("PENDING", "RESENDING")), d.c.next_attempt_us <= now_us),
            and_(d.c.state == "SENDING", d.c.lease_until_us <= now_us),
        )
        live_channel = (
            select(ch.c.id).where(ch.c.id == d.c.channel_id, ch.c.disabled.is_(False), ch.c.deleted_us.is_(None))
        ).exists()
        candidates = (
            select(d.c.event_id, d.c.channel_id, d.c.attempts)
            .where(due, live_channel)
            .order_by(d.c.next_attempt_us, d.c.created_us, d.c.event_id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=d)
        )

        def work(connection: Connection) -> list[DeliveryJob]:
            rows = connection.execute(candidates).all()
            if not rows:
                return []
            claimed: list[tuple[str, str, int]] = []
            for row in rows:
                connection.execute(
                    update(d)
                    .where(d.c.event_id == row.event_id, d.c.channel_id == row.channel_id)
                    .values(state="SENDING", attempts=row.attempts + 1, lease_until_us=until_us, updated_us=now_us)
                )
                claimed.append((row.event_id, row.channel_id, row.attempts + 1))
            event_ids = list({e for e, _, _ in claimed})
            channel_ids = list({c for _, c, _ in claimed})
            events = {
                row.id: _event(row)
                for row in connection.execute(
                    select(notification_events).where(notification_events.c.id.in_(event_ids))
                )
            }
            channels = {row.id: _channel(row) for row in connection.execute(select(ch).where(ch.c.id.in_(channel_ids)))}
            return [DeliveryJob(events[e], channels[c], n) for e, c, n in claimed]

        return await self._write(work)

    async def finish_delivery(self, event_id: str, channel_id: str, result: AttemptResult) -> None:
        attempt = result.attempt
        at_us = to_micros(attempt.at)

        def work(connection: Connection) -> None:
            connection.execute(
                notification_attempts.insert().values(
                    event_id=event_id,
                    channel_id=channel_id,
                    at_us=at_us,
                    state=attempt.state,
                    status_code=attempt.status_code,
                    body=attempt.body,
                    duration_ms=attempt.duration_ms,
                    url=attempt.url,
                )
            )
            d = notification_deliveries
            connection.execute(
                update(d)
                .where(d.c.event_id == event_id, d.c.channel_id == channel_id)
                .values(
                    state=result.state,
                    next_attempt_us=None if result.next_attempt_at is None else to_micros(result.next_attempt_at),
                    lease_until_us=None,
                    updated_us=at_us,
                    reason=result.reason,
                )
            )
            if result.disable_channel:
                connection.execute(
                    update(notification_channels)
                    .where(notification_channels.c.id == channel_id)
                    .values(disabled=True, disabled_reason=result.reason, updated_us=at_us)
                )

        await self._write(work)

    async def resend(self, event_id: str, *, at: datetime) -> bool:
        at_us = to_micros(at)

        def work(connection: Connection) -> bool:
            found = connection.execute(
                select(notification_events.c.id).where(notification_events.c.id == event_id)
            ).first()
            if found is None:
                return False
            connection.execute(
                update(notification_deliveries)
                .where(notification_deliveries.c.event_id == event_id)
                .values(
                    state="RESENDING",
                    attempts=0,
                    next_attempt_us=at_us,
                    lease_until_us=None,
                    updated_us=at_us,
                    reason="resend",
                )
            )
            return True

        return await self._write(work)

    async def oldest_pending(self) -> datetime | None:
        d = notification_deliveries
        query = select(func.min(d.c.created_us)).where(d.c.state.in_(OPEN))
        value = await self._query(lambda c: c.execute(query).scalar())
        return None if value is None else from_micros(int(value))

    async def delivery_counts(self) -> Mapping[str, int]:
        d = notification_deliveries
        query = select(d.c.state, func.count()).group_by(d.c.state)
        rows = await self._query(lambda c: c.execute(query).all())
        return {row[0]: int(row[1]) for row in rows}

    async def close(self) -> None:
        """The engine is shared with the other stores; whoever built it disposes of it."""
        return
