"""OpenMeter's notification shapes: channels (the signing secret only in the creation's answer), rules
(channels and features as `{id, ...}` objects, thresholds as `{value, type}`), events with their delivery
status and attempts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from tollway.api.wire import Json, Obj, optional_time
from tollway.errors import ValidationError
from tollway.money import parse_decimal
from tollway.notifications.model import THRESHOLD_TYPES, Channel, Delivery, Event, Rule, Threshold
from tollway.notifications.service import ChannelInput, RuleInput
from tollway.notifications.wire import number

CHANNEL_FIELDS = ("type", "name", "url", "customHeaders", "signingSecret", "disabled", "metadata")
RULE_FIELDS = ("type", "name", "channels", "features", "thresholds", "disabled", "metadata")


def decode_channel(body: object) -> ChannelInput:
    obj = Obj(body, "", CHANNEL_FIELDS)
    headers = obj.get("customHeaders")
    if headers is not None and (not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values())):
        raise ValidationError("customHeaders must be an object of strings", field="customHeaders")
    return ChannelInput(
        type=obj.req_text("type"),
        name=obj.req_text("name"),
        url=obj.req_text("url"),
        custom_headers=dict(headers or {}),
        signing_secret=obj.text("signingSecret"),
        disabled=obj.boolean("disabled", False),
        metadata=obj.metadata(),
    )


def _threshold(value: object, where: str) -> Threshold:
    obj = Obj(value, where, ("value", "type"))
    kind = obj.req_text("type")
    if kind not in THRESHOLD_TYPES:
        raise ValidationError(f"{where}.type must be one of {', '.join(THRESHOLD_TYPES)}", field=f"{where}.type")
    raw = obj.get("value")
    if raw is None:
        raise ValidationError(f"{where}.value is required", field=f"{where}.value")
    amount = parse_decimal(raw, field=f"{where}.value", minimum=Decimal(0))
    return Threshold(amount, kind)


def decode_rule(body: object) -> RuleInput:
    obj = Obj(body, "", RULE_FIELDS)
    thresholds = tuple(_threshold(t, f"thresholds[{n}]") for n, t in enumerate(obj.items("thresholds")))
    return RuleInput(
        type=obj.req_text("type"),
        name=obj.req_text("name"),
        channels=tuple(obj.strings("channels")),
        features=tuple(obj.strings("features")),
        thresholds=thresholds,
        disabled=obj.boolean("disabled", False),
        metadata=obj.metadata(),
    )


def encode_channel(channel: Channel, *, with_secret: bool = False) -> Json:
    out: Json = {
        "id": channel.id,
        "type": channel.type,
        "name": channel.name,
        "url": channel.url,
        "customHeaders": dict(channel.custom_headers),
        "disabled": channel.disabled,
        "metadata": channel.metadata or None,
        "annotations": {"tollway.disabledReason": channel.disabled_reason} if channel.disabled_reason else None,
        "createdAt": optional_time(channel.created_at),
        "updatedAt": optional_time(channel.updated_at),
        "deletedAt": optional_time(channel.deleted_at),
    }
    if with_secret:  # shown once: in the answer to the creation
        out["signingSecret"] = channel.signing_secret
    return out


def channel_meta(channel_id: str, channels: Mapping[str, Channel]) -> Json:
    channel = channels.get(channel_id)
    return {"id": channel_id, "type": "WEBHOOK", "name": channel.name if channel is not None else None}


def encode_rule(rule: Rule, channels: Mapping[str, Channel], feature_ids: Callable[[str], str | None]) -> Json:
    out: Json = {
        "id": rule.id,
        "type": rule.type,
        "name": rule.name,
        "disabled": rule.disabled,
        "channels": [channel_meta(c, channels) for c in rule.channel_ids],
        "metadata": rule.metadata or None,
        "createdAt": optional_time(rule.created_at),
        "updatedAt": optional_time(rule.updated_at),
        "deletedAt": optional_time(rule.deleted_at),
    }
    if rule.feature_keys:
        out["features"] = [{"id": feature_ids(key) or key, "key": key} for key in rule.feature_keys]
    if rule.thresholds:
        out["thresholds"] = [{"value": number(t.value), "type": t.type} for t in rule.thresholds]
    return out


def _delivery(delivery: Delivery, channels: Mapping[str, Channel]) -> Json:
    return {
        "channel": channel_meta(delivery.channel_id, channels),
        "state": delivery.state,
        "reason": delivery.reason,
        "updatedAt": optional_time(delivery.updated_at),
        "nextAttempt": optional_time(delivery.next_attempt_at) if delivery.state not in ("SUCCESS", "FAILED") else None,
        "attempts": [
            {
                "state": attempt.state,
                "timestamp": optional_time(attempt.at),
                "response": {
                    "statusCode": attempt.status_code,
                    "body": attempt.body,
                    "durationMs": attempt.duration_ms,
                    "url": attempt.url,
                },
            }
            for attempt in delivery.history
        ],
    }


def encode_event(event: Event, rule: Json | None, channels: Mapping[str, Channel]) -> Json:
    return {
        "id": event.id,
        "type": event.type,
        "createdAt": optional_time(event.created_at),
        "rule": rule,
        "deliveryStatus": [_delivery(d, channels) for d in event.deliveries],
        "payload": event.payload(),
        "annotations": None,
    }


def as_list(values: Any) -> list[str]:
    return [v for v in values if v != ""]
