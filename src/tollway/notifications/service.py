"""NotificationService: channels, rules and events — the use cases behind the API, the CLI and the config
file, and the `emit` door (tollway.notifications.emit) other domains notify through.

Every write is validated first and raises a DomainError naming the offending field (the API's spelling);
nothing is stored when it raises. A channel's signing secret is generated (`whsec_` + 32 random bytes) when
none is given; the API shows it only in the answer to the creation.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from tollway.clock import Clock
from tollway.errors import NotFoundError, ValidationError
from tollway.ids import new_id
from tollway.notifications.model import (
    CREDITS_BALANCE_LOW,
    CREDITS_EXPIRING,
    ENTITLEMENT_TYPES,
    EVENT_TYPES,
    THRESHOLD_RULE_TYPES,
    WEBHOOK,
    Channel,
    Event,
    EventFilter,
    Rule,
    Threshold,
    ThresholdMark,
)
from tollway.notifications.ports import NotificationStore
from tollway.notifications.samples import sample_data
from tollway.notifications.signing import RESERVED_HEADERS, new_secret, secret_key
from tollway.notifications.thresholds import check_amounts, check_days, check_thresholds
from tollway.notifications.urls import Resolve, check_url

HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
MAX_HEADERS = 32


@dataclass(frozen=True)
class ChannelInput:
    name: str
    url: str
    custom_headers: dict[str, str] = field(default_factory=dict)
    signing_secret: str | None = None
    disabled: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    type: str = WEBHOOK


@dataclass(frozen=True)
class RuleInput:
    type: str
    name: str
    channels: tuple[str, ...]
    features: tuple[str, ...] = ()
    thresholds: tuple[Threshold, ...] = ()
    disabled: bool = False
    metadata: dict[str, str] = field(default_factory=dict)


def _name(value: str, what: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= 255:
        raise ValidationError(f"{what} must be 1 to 255 characters", field="name")
    return value


class NotificationService:
    def __init__(
        self,
        store: NotificationStore,
        clock: Clock,
        *,
        resolve: Resolve,
        allow_private: bool = False,
        on_secrets: Callable[[list[str]], None] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._resolve = resolve
        self._allow_private = allow_private
        self._on_secrets = on_secrets
        # The rules read once for a detection round (set in the round's task only; see one_rules_read).
        self._round_rules: ContextVar[list[Rule] | None] = ContextVar(f"tollway-rules-{id(self)}", default=None)

    @property
    def store(self) -> NotificationStore:
        return self._store

    @property
    def allow_private(self) -> bool:
        return self._allow_private

    def on_secrets(self, callback: Callable[[list[str]], None]) -> None:
        self._on_secrets = callback

    async def publish_secrets(self) -> None:
        """Hand every channel's signing secret to the scrubber (at start and after each channel write)."""
        if self._on_secrets is not None:
            self._on_secrets([c.signing_secret for c in await self._store.list_channels()])

    # -- channels -------------------------------------------------------------------------------

    async def _checked_channel(self, data: ChannelInput) -> ChannelInput:
        if data.type != WEBHOOK:
            raise ValidationError(f"type must be {WEBHOOK}, got {data.type!r}", field="type")
        name = _name(data.name, "name")
        await check_url(data.url, allow_private=self._allow_private, resolve=self._resolve, field="url")
        if len(data.custom_headers) > MAX_HEADERS:
            raise ValidationError(f"customHeaders holds at most {MAX_HEADERS} headers", field="customHeaders")
        for header, value in data.custom_headers.items():
            where = f"customHeaders.{header}"
            if not HEADER_NAME.match(header):
                raise ValidationError(f"{where}: not a valid HTTP header name", field=where)
            if header.lower() in RESERVED_HEADERS:
                raise ValidationError(
                    f"{where}: Tollway sets this header (the signature headers cannot be overridden)", field=where
                )
            if any(c in value for c in "\r\n\0") or len(value) > 4096:
                raise ValidationError(
                    f"{where}: the value may not hold line breaks (4096 characters at most)", field=where
                )
        if data.signing_secret is not None:
            secret_key(data.signing_secret, "signingSecret")
        return replace(data, name=name)

    async def create_channel(self, data: ChannelInput, *, channel_id: str | None = None) -> Channel:
        """`channel_id`: a fixed id (the config file's channels: two processes applying it write one channel)."""
        data = await self._checked_channel(data)
        now = self._clock.now()
        channel = Channel(
            id=channel_id or new_id(now),
            name=data.name,
            url=data.url,
            signing_secret=data.signing_secret or new_secret(),
            created_at=now,
            updated_at=now,
            custom_headers=dict(data.custom_headers),
            disabled=data.disabled,
            metadata=dict(data.metadata),
        )
        await self._store.save_channel(channel)
        await self.publish_secrets()
        return channel

    async def update_channel(self, channel_id: str, data: ChannelInput) -> Channel:
        current = await self.channel(channel_id)
        data = await self._checked_channel(data)
        channel = replace(
            current,
            name=data.name,
            url=data.url,
            custom_headers=dict(data.custom_headers),
            signing_secret=data.signing_secret or current.signing_secret,
            disabled=data.disabled,
            disabled_reason=None if not data.disabled else current.disabled_reason,
            metadata=dict(data.metadata),
            updated_at=self._clock.now(),
        )
        await self._store.save_channel(channel)
        await self.publish_secrets()
        return channel

    async def channel(self, channel_id: str, *, include_deleted: bool = False) -> Channel:
        channel = await self._store.get_channel(channel_id)
        if channel is None or (channel.deleted_at is not None and not include_deleted):
            raise NotFoundError(f"notification channel {channel_id!r} not found", field="channelId")
        return channel

    async def channels(self, *, include_disabled: bool = False, include_deleted: bool = False) -> list[Channel]:
        return [
            c
            for c in await self._store.list_channels()
            if (include_deleted or c.deleted_at is None) and (include_disabled or not c.disabled)
        ]

    async def delete_channel(self, channel_id: str) -> None:
        channel = await self.channel(channel_id)
        users = [r.name for r in await self._store.list_rules() if r.deleted_at is None and channel_id in r.channel_ids]
        if users:
            raise ValidationError(
                f"channel {channel_id} is used by rule(s) {', '.join(sorted(users))}: remove it from them first",
                field="channelId",
            )
        now = self._clock.now()
        await self._store.save_channel(replace(channel, deleted_at=now, updated_at=now))

    # -- rules ----------------------------------------------------------------------------------

    async def _checked_rule(self, data: RuleInput) -> RuleInput:
        if data.type not in EVENT_TYPES:
            raise ValidationError(f"type must be one of {', '.join(EVENT_TYPES)}, got {data.type!r}", field="type")
        name = _name(data.name, "name")
        if not data.channels:
            raise ValidationError("channels needs at least one channel id", field="channels")
        for n, channel_id in enumerate(data.channels):
            found = await self._store.get_channel(channel_id)
            if found is None or found.deleted_at is not None:
                raise ValidationError(f"channels[{n}]: no channel {channel_id!r}", field=f"channels[{n}]")
        if data.features and data.type not in ENTITLEMENT_TYPES:
            raise ValidationError(f"features apply to entitlement rules only, not {data.type}", field="features")
        if data.type == CREDITS_EXPIRING:
            check_days(data.thresholds)
        elif data.type == CREDITS_BALANCE_LOW:
            check_amounts(data.thresholds)
        elif data.type in THRESHOLD_RULE_TYPES:
            check_thresholds(data.thresholds)
        elif data.thresholds:
            kinds = ", ".join(sorted(THRESHOLD_RULE_TYPES))
            raise ValidationError(f"thresholds apply to {kinds} rules only", field="thresholds")
        return replace(data, name=name, channels=tuple(dict.fromkeys(data.channels)))

    async def create_rule(self, data: RuleInput, *, rule_id: str | None = None) -> Rule:
        data = await self._checked_rule(data)
        now = self._clock.now()
        rule = Rule(
            id=rule_id or new_id(now),
            name=data.name,
            type=data.type,
            channel_ids=data.channels,
            created_at=now,
            updated_at=now,
            disabled=data.disabled,
            feature_keys=data.features,
            thresholds=data.thresholds,
            metadata=dict(data.metadata),
        )
        await self._store.save_rule(rule)
        return rule

    async def update_rule(self, rule_id: str, data: RuleInput) -> Rule:
        current = await self.rule(rule_id)
        data = await self._checked_rule(data)
        if data.type != current.type:
            raise ValidationError(f"a rule's type cannot change (it is {current.type})", field="type")
        rule = replace(
            current,
            name=data.name,
            channel_ids=data.channels,
            feature_keys=data.features,
            thresholds=data.thresholds,
            disabled=data.disabled,
            metadata=dict(data.metadata),
            updated_at=self._clock.now(),
        )
        await self._store.save_rule(rule)
        return rule

    async def rule(self, rule_id: str, *, include_deleted: bool = False) -> Rule:
        rule = await self._store.get_rule(rule_id)
        if rule is None or (rule.deleted_at is not None and not include_deleted):
            raise NotFoundError(f"notification rule {rule_id!r} not found", field="ruleId")
        return rule

    async def rules(
        self,
        *,
        include_disabled: bool = False,
        include_deleted: bool = False,
        features: Sequence[str] = (),
        channels: Sequence[str] = (),
    ) -> list[Rule]:
        return [
            r
            for r in await self._store.list_rules()
            if (include_deleted or r.deleted_at is None)
            and (include_disabled or not r.disabled)
            and (not features or any(f in r.feature_keys for f in features))
            and (not channels or any(c in r.channel_ids for c in channels))
        ]

    async def delete_rule(self, rule_id: str) -> None:
        rule = await self.rule(rule_id)
        now = self._clock.now()
        await self._store.save_rule(replace(rule, deleted_at=now, updated_at=now))

    async def test_rule(self, rule_id: str) -> Event:
        """Send a sample event of the rule's type to its channels (marked `"test": true` in its data)."""
        rule = await self.rule(rule_id)
        now = self._clock.now()
        event = Event(id=new_id(now), type=rule.type, created_at=now, data=sample_data(rule.type, now), rule_id=rule.id)
        await self._store.add_event(event, await self._live_channels(rule))
        found = await self._store.get_event(event.id)
        assert found is not None
        return found

    async def _live_channels(self, rule: Rule) -> tuple[str, ...]:
        live: list[str] = []
        for channel_id in rule.channel_ids:
            channel = await self._store.get_channel(channel_id)
            if channel is not None and channel.deleted_at is None and not channel.disabled:
                live.append(channel_id)
        return tuple(live)

    # -- events ---------------------------------------------------------------------------------

    async def events(self, query: EventFilter) -> list[Event]:
        return await self._store.list_events(query)

    async def count_events(self, query: EventFilter) -> int:
        return await self._store.count_events(query)

    async def event(self, event_id: str) -> Event:
        event = await self._store.get_event(event_id)
        if event is None:
            raise NotFoundError(f"notification event {event_id!r} not found", field="eventId")
        return event

    async def resend(self, event_id: str) -> Event:
        if not await self._store.resend(event_id, at=self._clock.now()):
            raise NotFoundError(f"notification event {event_id!r} not found", field="eventId")
        return await self.event(event_id)

    async def active_rules(self, event_type: str) -> list[Rule]:
        rules = self._round_rules.get()
        if rules is None:
            rules = await self._store.list_rules()
        return [r for r in rules if r.type == event_type and r.active]

    @contextlib.asynccontextmanager
    async def one_rules_read(self) -> AsyncIterator[None]:
        """Inside (in this task only): active_rules answers from one read of the rules, made on entering. A
        detection round's steps (seven active_rules calls) share it; other tasks (API requests) read as before."""
        token = self._round_rules.set(await self._store.list_rules())
        try:
            yield
        finally:
            self._round_rules.reset(token)

    async def record(
        self,
        rule: Rule,
        event_type: str,
        data: Mapping[str, Any],
        *,
        mark: ThresholdMark | None = None,
        dedup_key: str | None = None,
        feature_key: str | None = None,
        subject_key: str | None = None,
    ) -> Event | None:
        """Store one event of `rule` (its deliveries with it); None when the mark or dedup key existed."""
        now = self._clock.now()
        event = Event(
            id=new_id(now),
            type=event_type,
            created_at=now,
            data=dict(data),
            rule_id=rule.id,
            feature_key=feature_key,
            subject_key=subject_key,
        )
        stored = await self._store.add_event(event, await self._live_channels(rule), mark=mark, dedup_key=dedup_key)
        return event if stored else None

    async def emit(
        self,
        event_type: str,
        data: Mapping[str, Any],
        *,
        dedup_key: str | None = None,
        feature_key: str | None = None,
        subject_key: str | None = None,
    ) -> int:
        """tollway.notifications.emit.Notifier: one event per active rule of `event_type`."""
        stored = 0
        for rule in await self.active_rules(event_type):
            key = None if dedup_key is None else f"{dedup_key}@{rule.id}"
            event = await self.record(
                rule, event_type, data, dedup_key=key, feature_key=feature_key, subject_key=subject_key
            )
            stored += event is not None
        return stored
