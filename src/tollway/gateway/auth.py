"""API keys -> consumers. Keys are held only as SHA-256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Consumer:
    username: str
    models: frozenset[str] | None  # None: every configured model


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyIndex:
    """Looks a presented key up by its digest. The digest comparison runs in constant time."""

    def __init__(self) -> None:
        self._by_digest: dict[bytes, tuple[bytes, Consumer]] = {}

    @classmethod
    def build(cls, entries: Iterable[tuple[str, Consumer]]) -> KeyIndex:
        """`entries` pairs a stored key hash (`sha256:<hex>`) with its consumer."""
        index = cls()
        for stored, consumer in entries:
            digest = bytes.fromhex(stored.removeprefix("sha256:"))
            index._by_digest[digest] = (digest, consumer)
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
        stored, consumer = found
        return consumer if hmac.compare_digest(stored, digest) else None

    def __len__(self) -> int:
        return len(self._by_digest)


def presented_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The key from `Authorization: Bearer`, `x-api-key` or `apikey`, in that order of preference."""
    bearer = api_key = kong = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                bearer = token.strip()
        elif name == b"x-api-key":
            api_key = value.strip()
        elif name == b"apikey":
            kong = value.strip()
    return bearer or api_key or kong
