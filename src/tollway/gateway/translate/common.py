"""Plumbing shared by the translators: SSE events, refusals, the stream translator's interface (the response whose
body is translated as it is read is tollway.gateway.providers.translated)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from tollway.errors import ValidationError
from tollway.gateway.decode import json_object
from tollway.gateway.streaming import event_data

# An image passed inline as `data:<media type>;base64,<data>` (OpenAI image_url parts).
DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)


class EventTranslator(Protocol):
    def feed(self, event: bytes) -> bytes:
        """Translate one complete upstream SSE event into zero or more client events."""
        ...

    def finish(self) -> bytes:
        """Called when the upstream stream ended cleanly (not when it broke)."""
        ...


def sse(data: Mapping[str, Any], event: str | None = None) -> bytes:
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def sse_json(event: bytes) -> dict[str, Any] | None:
    """The JSON object carried by one SSE event, or None."""
    data = event_data(event)
    if data is None or data == b"[DONE]":
        return None
    return json_object(data)


def unsupported(field: str, why: str = "") -> ValidationError:
    """The 400 for a field that cannot be translated faithfully for the chosen model's provider."""
    detail = f": {why}" if why else ""
    return ValidationError(
        f"'{field}' cannot be translated for this model's provider{detail}. Remove it or use a model whose "
        "provider speaks this API natively.",
        field=field,
        code="untranslatable_field",
    )


def neutral(value: Any, *defaults: Any) -> bool:
    """True when a field holds a value that changes nothing (so dropping it is faithful)."""
    return value is None or any(value == d and type(value) is type(d) for d in defaults)
