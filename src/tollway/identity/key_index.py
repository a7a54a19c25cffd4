"""API keys -> identities. Keys are held only as SHA-256 digests and compared in constant time.

The gateway authenticates each request here (tollway.gateway.auth reads the presented key out of the request);
KeyDirectory (directory.py) keeps the index equal to the config file's keys plus the stored ones."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a presented key speaks for: its consumer's username and the models this key may use."""

    username: str
    models: frozenset[str] | None  # None: every configured model
    key_id: str | None = None  # the id of the key it authenticated with (keys managed through the API)


NEVER = math.inf


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key managed at run time: its digest (`sha256:<hex>`), the identity it grants (models already
    narrowed to the key's), its id (to record the day it was used) and when it expires (epoch seconds)."""

    digest: str
    consumer: Identity
    key_id: str
    expires_at: float = NEVER


class KeyIndex:
    """Looks a presented key up by its digest. The digest comparison runs in constant time.

    A key with an expiry is refused from that moment on, read from `now` (epoch seconds), without a
    rebuild. Ids of stored keys that authenticate are added to `used` (read by the refresher)."""

    def __init__(self, *, used: set[str] | None = None, now: Callable[[], float] = time.time) -> None:
        self._by_digest: dict[bytes, tuple[bytes, Identity, float, str | None]] = {}
        self.used: set[str] = used if used is not None else set()
        self._now = now

    @classmethod
    def build(
        cls,
        entries: Iterable[tuple[str, Identity]],
        *,
        stored: Iterable[StoredKey] = (),
        used: set[str] | None = None,
        now: Callable[[], float] = time.time,
    ) -> KeyIndex:
        """`entries` pairs a configured key hash (`sha256:<hex>`) with its consumer; `stored` adds keys
        managed at run time. A configured key wins over a stored one with the same digest."""
        index = cls(used=used, now=now)
        for key in stored:
            digest = bytes.fromhex(key.digest.removeprefix("sha256:"))
            index._by_digest[digest] = (digest, key.consumer, key.expires_at, key.key_id)
        for hashed, consumer in entries:
            digest = bytes.fromhex(hashed.removeprefix("sha256:"))
            index._by_digest[digest] = (digest, consumer, NEVER, None)
        return index

    def authenticate(self, presented: bytes | None) -> Identity | None:
        if not presented:
            return None
        digest = hashlib.sha256(presented).digest()
        found = self._by_digest.get(digest)
        if found is None:
            # Spend the same comparison on a miss as on a hit.
            hmac.compare_digest(digest, digest)
            return None
        stored, consumer, expires_at, key_id = found
        if not hmac.compare_digest(stored, digest):
            return None
        if expires_at != NEVER and expires_at <= self._now():
            return None
        if key_id is not None:
            self.used.add(key_id)
        return consumer

    def __len__(self) -> int:
        return len(self._by_digest)
