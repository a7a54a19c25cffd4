"""Plumbing shared by the translators: a response whose body is translated as it is read."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import orjson

from tollway.errors import ValidationError
from tollway.gateway.decode import json_object
from tollway.gateway.providers.base import UpstreamResponse
from tollway.gateway.streaming import SSEFramer, event_data

# An image passed inline as `data:<media type>;base64,<data>` (OpenAI image_url parts).
DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)


class EventTranslator(Protocol):
    def feed(self, event: bytes) -> bytes:
        """Translate one complete upstream SSE event into zero or more client events."""
        ...

    def finish(self) -> bytes:
        """Called when the upstream stream ended cleanly (not when it broke)."""
        ...


class TranslatedResponse:
    """Wraps an upstream response and translates its body: unary JSON, SSE streams and error bodies."""

    def __init__(
        self,
        inner: UpstreamResponse,
        *,
        unary: Callable[[dict[str, Any]], dict[str, Any]],
        stream: Callable[[], EventTranslator] | None,
        error: Callable[[bytes, int], bytes],
    ) -> None:
        self._inner = inner
        self.content_length: int | None = None  # the translated body has its own length
        self._unary = unary
        self._stream = stream if inner.status < 400 else None
        self._error = error
        self.status = inner.status
        self.content_type = "text/event-stream; charset=utf-8" if self._stream is not None else "application/json"

    @property
    def relayed_headers(self) -> list[tuple[bytes, bytes]]:
        return self._inner.relayed_headers

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        if self._stream is None:
            yield await self.read()
            return
        translator = self._stream()
        framer = SSEFramer()
        async for chunk in self._inner.iter_chunks():
            out = b"".join([translator.feed(event) for event in framer.feed(chunk)])
            if out:
                yield out
        tail = translator.feed(framer.rest() + b"\n\n") if framer.rest().strip() else b""
        tail += translator.finish()
        if tail:
            yield tail

    async def read(self) -> bytes:
        raw = await self._inner.read()
        if self.status >= 400:
            return self._error(raw, self.status)
        parsed = json_object(raw)
        return raw if parsed is None else orjson.dumps(self._unary(parsed))

    def close(self) -> None:
        self._inner.close()


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
