"""Per-endpoint provider adapters: speak the endpoint's format natively when the provider can, else translate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from tollway.gateway.providers.base import Provider, UpstreamRequest, UpstreamResponse
from tollway.gateway.providers.translated import TranslatedResponse
from tollway.gateway.routing import Route, Target
from tollway.gateway.translate.common import EventTranslator


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
        pivot: str = "/chat/completions",
    ) -> None:
        self.name = inner.name
        self._pivot = pivot  # the OpenAI path a translated request is sent to
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
        if self.speaks_natively:
            return await self._inner.send(request)
        return await self.translate(request)

    @property
    def speaks_natively(self) -> bool:
        return self._path in self._inner.native_paths

    def with_headers(self, headers: tuple[tuple[str, str], ...]) -> Provider:
        """This adapter for one request whose client headers go upstream on the native path."""
        return _WithHeaders(self, headers)

    async def translate(self, request: UpstreamRequest) -> UpstreamResponse:
        payload = self._to_chat(request.payload)
        chat = UpstreamRequest(
            path=self._pivot,
            body=orjson.dumps(payload),
            payload=payload,
            stream=request.stream,
            request_id=request.request_id,
            timeouts=request.timeouts,
        )
        response = await self._inner.send(chat)
        original = request.payload
        return TranslatedResponse(
            response,
            unary=self._from_chat,
            stream=(lambda: self._stream(original)) if request.stream else None,
            error=self._error,
        )


class _WithHeaders:
    def __init__(self, adapter: FormatAdapter, headers: tuple[tuple[str, str], ...]) -> None:
        self.name = adapter.name
        self.native_paths = adapter.native_paths
        self._adapter = adapter
        self._headers = headers

    async def start(self) -> None:
        await self._adapter.start()

    async def close(self) -> None:
        await self._adapter.close()

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if self._adapter.speaks_natively:
            return await self._adapter.send(replace(request, headers=self._headers))
        return await self._adapter.send(request)


class AdaptedRoutes:
    """Caches one adapter per provider; routes are rebuilt cheaply per request from them."""

    def __init__(self, make: Callable[[Provider], Provider]) -> None:
        self._make = make
        self._adapters: dict[int, tuple[Provider, Provider]] = {}

    def adapt(self, route: Route, headers: tuple[tuple[str, str], ...] = ()) -> Route:
        """The route with each provider seen through this endpoint's format; `headers` (client headers to
        pass on) reach only providers that speak the format natively."""
        targets = []
        for target in route.targets:
            adapter = self._adapter(target.provider)
            if headers and isinstance(adapter, FormatAdapter):
                adapter = adapter.with_headers(headers)
            targets.append(Target(adapter, target.model, target.retry, target.timeouts, target.context_window))
        return replace(route, targets=tuple(targets))

    def _adapter(self, provider: Provider) -> Provider:
        found = self._adapters.get(id(provider))
        if found is None or found[0] is not provider:
            found = (provider, self._make(provider))
            self._adapters[id(provider)] = found
        return found[1]
