"""A provider's response whose body is translated as it is read (unary JSON, SSE streams, error bodies), by the
translators of tollway.gateway.translate."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from tollway.gateway.decode import json_object
from tollway.gateway.providers.base import UpstreamResponse
from tollway.gateway.streaming import SSEFramer
from tollway.gateway.translate.common import EventTranslator


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
