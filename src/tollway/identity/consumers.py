"""Consumers: the API callers the gateway knows, each with a username, the models it may use and metadata."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from tollway.errors import ValidationError

# A consumer's username (its usage's subject, and a path segment of the consumers API): letters and digits of any
# script, and spaces and . _ : @ - inside (Kong's usernames, e.g. "Jane Doe" or "Zoë"); no "/", which a path
# could not address. Python's re (Unicode \w), as the server checks it.
USERNAME_PATTERN = r"^[^\W_](?:[\w .:@-]{0,126}[\w.:@-])?$"
USERNAME_RULE = (
    "1-128 characters: letters and digits of any script, and spaces and . _ : @ - inside (not first or last)"
)

ManagedBy = Literal["config", "api"]
MANAGED_BY: tuple[ManagedBy, ...] = ("config", "api")
USERNAME = re.compile(USERNAME_PATTERN)
MAX_METADATA_ENTRIES = 50
MAX_METADATA_TEXT = 1024


@dataclass(frozen=True)
class Consumer:
    """A gateway identity. `models` None: every configured model."""

    username: str
    managed_by: ManagedBy
    models: frozenset[str] | None
    created_at: datetime
    updated_at: datetime
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfiguredConsumer:
    """A consumer of the config file (managedBy: config) and its keys, as digests (`sha256:<hex>`), in the file's
    order (its plain keys hashed, then its key hashes). `models` None: every configured model."""

    username: str
    models: frozenset[str] | None
    digests: tuple[str, ...]


def check_username(username: object, *, field_name: str = "username") -> str:
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise ValidationError(
            f"{field_name} must be {USERNAME_RULE}; got {username!r}",
            field=field_name,
        )
    return username


def check_models(models: object, *, known: frozenset[str] | None, field_name: str = "models") -> frozenset[str] | None:
    """A list of model names (None: every model). Names must be models of the running config when it is known."""
    if models is None:
        return None
    if not isinstance(models, list | tuple | frozenset | set) or not all(isinstance(m, str) and m for m in models):
        raise ValidationError(f"{field_name} must be a list of model names", field=field_name)
    names = frozenset(models)
    if known is not None:
        unknown = sorted(names - known)
        if unknown:
            raise ValidationError(
                f"{field_name}: unknown model {unknown[0]!r} (configured: {', '.join(sorted(known)) or 'none'})",
                field=field_name,
            )
    return names


def check_metadata(metadata: object, *, field_name: str = "metadata") -> dict[str, str]:
    """A flat object of strings to strings (as OpenMeter's metadata)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValidationError(f"{field_name} must be an object of strings", field=field_name)
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise ValidationError(f"{field_name} holds at most {MAX_METADATA_ENTRIES} entries", field=field_name)
    checked: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ValidationError(f"{field_name}: every key and value must be a string, got {name!r}", field=field_name)
        if len(name) > MAX_METADATA_TEXT or len(value) > MAX_METADATA_TEXT:
            raise ValidationError(f"{field_name}: {name!r} is over {MAX_METADATA_TEXT} characters", field=field_name)
        checked[name] = value
    return checked
