"""API keys -> consumers. Keys are held only as SHA-256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes


@dataclass(frozen=True, slots=True)
class Consumer:
    username: str
    models: frozenset[str] | None  # None: every configured model


NEVER = math.inf


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key managed at run time: its digest (`sha256:<hex>`), the identity it grants (models already
    narrowed to the key's), its id (to record the day it was used) and when it expires (epoch seconds)."""

    digest: str
    consumer: Consumer
    key_id: str
    expires_at: float = NEVER


class KeyIndex:
    """Looks a presented key up by its digest. The digest comparison runs in constant time.

    A key with an expiry is refused from that moment on, read from `now` (epoch seconds), without a
    rebuild. Ids of stored keys that authenticate are added to `used` (read by the refresher)."""

    def __init__(self, *, used: set[str] | None = None, now: Callable[[], float] = time.time) -> None:
        self._by_digest: dict[bytes, tuple[bytes, Consumer, float, str | None]] = {}
        self.used: set[str] = used if used is not None else set()
        self._now = now

    @classmethod
    def build(
        cls,
        entries: Iterable[tuple[str, Consumer]],
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

    def authenticate(self, presented: bytes | None) -> Consumer | None:
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


def presented_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The key from `Authorization: Bearer`, `x-api-key`, `x-goog-api-key` (Google's clients) or `apikey`,
    in that order of preference."""
    bearer = api_key = goog = kong = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                bearer = token.strip()
        elif name == b"x-api-key":
            api_key = value.strip()
        elif name == b"x-goog-api-key":
            goog = value.strip()
        elif name == b"apikey":
            kong = value.strip()
    return bearer or api_key or goog or kong


def key_from_query(
    scope: MutableMapping[str, Any], name: bytes = b"key", header: bytes = b"x-goog-api-key"
) -> MutableMapping[str, Any]:
    """The scope with a query parameter that carries the key (`?key=`, Google's clients; `?apikey=`, Kong's
    key-auth) moved into a header (`x-goog-api-key`, `apikey`) and gone from the query string, so nothing that
    logs, echoes or forwards the URL sees it. The first occurrence is the key, and every occurrence leaves the
    query; none: the scope as it was."""
    query: bytes = scope.get("query_string") or b""
    if name + b"=" not in query:
        return scope
    kept: list[bytes] = []
    key: bytes | None = None
    for pair in query.split(b"&"):
        found, _, value = pair.partition(b"=")
        if found != name:
            kept.append(pair)
        elif key is None:
            key = unquote_to_bytes(value.replace(b"+", b" "))
    if key is None:
        return scope
    return {**scope, "query_string": b"&".join(kept), "headers": [*scope["headers"], (header, key)]}
