"""Decoding bodies the gateway relays: leniently, since a provider's bytes are not the client's fault."""

from __future__ import annotations

from typing import Any

import orjson


def json_object(raw: bytes) -> dict[str, Any] | None:
    """`raw` as a JSON object, or None when it is not valid JSON or not an object."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
