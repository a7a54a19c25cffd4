"""API keys: generated once, shown once, stored as a SHA-256 digest with a short prefix to recognise them."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import date, datetime

from tollway.errors import ValidationError
from tollway.identity.key_index import hash_key

KEY_PREFIX = "tw_"
KEY_RANDOM_CHARS = 40  # base62: about 238 bits
SHOWN_PREFIX_CHARS = 11  # "tw_" and 8 random characters: enough to tell keys apart, far from enough to guess one
BASE62 = string.ascii_letters + string.digits
MAX_NAME_CHARS = 100


@dataclass(frozen=True)
class ApiKey:
    """A key of a consumer. The plain key is never stored: `digest` is `sha256:<hex>` of it."""

    id: str
    username: str
    name: str | None
    prefix: str | None  # None for a config key given only as a hash
    digest: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_day: date | None = None
    models: frozenset[str] | None = None  # None: the consumer's models
    managed_by: str = "api"

    def active_at(self, moment: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > moment)


@dataclass(frozen=True)
class NewKey:
    """A key as it is created: the plain text goes to the caller once, the record to the store."""

    key: ApiKey
    plain: str


def generate_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(BASE62) for _ in range(KEY_RANDOM_CHARS))


IMPORTED_KEY_CHARS = (8, 256)  # a key set by the caller: as short as a config key may be, at most this long


def check_imported_key(value: object) -> None:
    """A caller-chosen key: 8-256 visible ASCII characters (it travels in a header), named `key` when refused."""
    low, high = IMPORTED_KEY_CHARS
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise ValidationError(f"key must be {low}-{high} characters", field="key")
    if not all("!" <= c <= "~" for c in value):
        raise ValidationError("key must be visible ASCII characters (no spaces or control characters)", field="key")


def shown_prefix(plain: str) -> str:
    return plain[:SHOWN_PREFIX_CHARS]


def digest_of(plain: str) -> str:
    return hash_key(plain)


def effective_models(consumer: frozenset[str] | None, key: frozenset[str] | None) -> frozenset[str] | None:
    """What a key may use: its own models narrowed by the consumer's (None: no restriction)."""
    if key is None:
        return consumer
    if consumer is None:
        return key
    return key & consumer
