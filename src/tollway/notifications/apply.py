"""Apply the config file's notification channels and rules (by name; `metadata.managedBy: config`).

A channel's or rule's id is derived from its name, so processes applying the same file at once (`tollway serve
--workers N`) write the same row instead of one each. A config channel's signing secret comes from the file
(nobody would see a generated one)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from tollway.notifications.model import Threshold
from tollway.notifications.service import ChannelInput, NotificationService, RuleInput

MANAGED = {"managedBy": "config"}
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def config_id(kind: str, name: str) -> str:
    """26 characters of the ULID alphabet from a hash of the kind and name."""
    value = int.from_bytes(hashlib.sha256(f"tollway-config-{kind}:{name}".encode()).digest()[:17], "big")
    return "".join(_ALPHABET[(value >> (5 * i)) & 31] for i in range(26))


@dataclass(frozen=True)
class DesiredChannel:
    name: str
    url: str
    signing_secret: str
    custom_headers: dict[str, str] = field(default_factory=dict)
    disabled: bool = False


@dataclass(frozen=True)
class DesiredRule:
    name: str
    type: str
    channels: tuple[str, ...]  # channel names
    features: tuple[str, ...] = ()
    thresholds: tuple[tuple[Decimal, str], ...] = ()
    disabled: bool = False


async def apply_notifications(
    service: NotificationService, channels: Sequence[DesiredChannel], rules: Sequence[DesiredRule]
) -> list[str]:
    """Create or update each; returns one line per change."""
    lines: list[str] = []
    stored = {c.name: c for c in await service.channels(include_disabled=True) if c.metadata == MANAGED}
    ids: dict[str, str] = {}
    for want in channels:
        data = ChannelInput(
            name=want.name,
            url=want.url,
            custom_headers=dict(want.custom_headers),
            signing_secret=want.signing_secret,
            disabled=want.disabled,
            metadata=dict(MANAGED),
        )
        have = stored.get(want.name)
        if have is None:
            ids[want.name] = (await service.create_channel(data, channel_id=config_id("channel", want.name))).id
            lines.append(f"notification channel {want.name} created")
            continue
        ids[want.name] = have.id
        same = (
            have.url == want.url
            and have.custom_headers == want.custom_headers
            and have.disabled == want.disabled
            and want.signing_secret == have.signing_secret
        )
        if not same:
            await service.update_channel(have.id, data)
            lines.append(f"notification channel {want.name} updated")
    stored_rules = {r.name: r for r in await service.rules(include_disabled=True) if r.metadata == MANAGED}
    for want_rule in rules:
        rule_data = RuleInput(
            type=want_rule.type,
            name=want_rule.name,
            channels=tuple(ids[name] for name in want_rule.channels),
            features=want_rule.features,
            thresholds=tuple(Threshold(value, kind) for value, kind in want_rule.thresholds),  # type: ignore[arg-type]
            disabled=want_rule.disabled,
            metadata=dict(MANAGED),
        )
        current = stored_rules.get(want_rule.name)
        if current is None:
            await service.create_rule(rule_data, rule_id=config_id("rule", want_rule.name))
            lines.append(f"notification rule {want_rule.name} created")
        elif (
            current.type != rule_data.type
            or current.channel_ids != rule_data.channels
            or current.feature_keys != rule_data.features
            or current.thresholds != rule_data.thresholds
            or current.disabled != rule_data.disabled
        ):
            if current.type != rule_data.type:  # a type never changes: a new rule (its events keep the old one)
                await service.delete_rule(current.id)
                await service.create_rule(rule_data, rule_id=config_id("rule", f"{want_rule.name}:{rule_data.type}"))
            else:
                await service.update_rule(current.id, rule_data)
            lines.append(f"notification rule {want_rule.name} updated")
    return lines
