"""Identifiers for stored resources: ULIDs (26 characters, Crockford base 32, sortable by creation time),
the shape OpenMeter uses for ids."""

from __future__ import annotations

import os
from datetime import datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(at: datetime) -> str:
    """A ULID: 48 bits of milliseconds since the epoch, then 80 random bits."""
    millis = int(at.timestamp() * 1000)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def looks_like_id(text: str) -> bool:
    return len(text) == 26 and all(c in _ALPHABET for c in text.upper())
