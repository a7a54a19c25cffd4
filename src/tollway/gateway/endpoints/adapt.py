"""Per-endpoint provider adapters: speak the endpoint's format natively when the provider can, else translate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from tollway.gateway.providers.base import Provider, UpstreamRequest, UpstreamResponse
from tollway.gateway.routing import Route, Target
from tollway.gateway.translate.common import EventTranslator, TranslatedResponse


class FormatAdapter:
    """A provider seen through one endpoint's format (e.g. Anthropic Messages)."""

    def __init__(
        self,
        inner: Provider,
        *,
        path: str,
        to_chat: Callable[[dict[str, Any]], dict[str, Any]],
        from_chat: Callable[[dict[str, Any]], dict[str, Any]],
        stream: Callable[[dict[str, Any]], EventTranslator],
        error: Callable[[bytes, int], bytes],
    ) -> None:
        self.name = inner.name
        self.native_paths = inner.native_paths
        self._inner = inner
        self._path = path
        self._to_chat = to_chat
        self._from_chat = from_chat
        self._stream = stream
        self._error = error

    async def start(self) -> None:
        await self._inner.start()

    async def close(self) -> None:
        await self._inner.close()

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if self._path in self._inner.native_paths:
            return await self._inner.send(request)
        payload = self._to_chat(request.payload)
        chat = UpstreamRequest(
            path="/chat/completions",
            body=orjson.dumps(payload),
            payload=payload,
            stream=request.stream,
            request_id=request.request_id,
        )
        response = await self._inner.send(chat)
        original = request.payload
        return TranslatedResponse(
            response,
            unary=self._from_chat,
            stream=(lambda: self._stream(original)) if request.stream else None,
            error=self._error,
        )


class AdaptedRoutes:
    """Caches one adapter per provider; routes are rebuilt cheaply per request from them."""

    def __init__(self, make: Callable[[Provider], Provider]) -> None:
        self._make = make
        self._adapters: dict[int, tuple[Provider, Provider]] = {}

    def adapt(self, route: Route) -> Route:
        return Route(
            model=route.model, targets=tuple(Target(self._adapter(t.provider), t.model) for t in route.targets)
        )

    def _adapter(self, provider: Provider) -> Provider:
        found = self._adapters.get(id(provider))
        if found is None or found[0] is not provider:
            found = (provider, self._make(provider))
            self._adapters[id(provider)] = found
        return found[1]
