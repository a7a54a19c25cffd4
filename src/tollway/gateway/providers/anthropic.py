"""Anthropic's Messages API: native for /v1/messages, translated for OpenAI chat requests."""

from __future__ import annotations

import orjson

from tollway.clock import Clock
from tollway.gateway.errors import to_openai_error
from tollway.gateway.providers.base import UpstreamRequest, UpstreamResponse, not_served
from tollway.gateway.providers.openai import DEFAULT_CONNECT_S, OpenAIProvider
from tollway.gateway.providers.translated import TranslatedResponse
from tollway.gateway.translate.anthropic import anthropic_to_chat_response, chat_to_anthropic_request
from tollway.gateway.translate.anthropic_stream import AnthropicToChat

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
API_VERSION = "2023-06-01"


class AnthropicProvider:
    native_paths = frozenset({"/messages", "/messages/count_tokens"})

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout_s: float,
        clock: Clock,
        headers: dict[str, str] | None = None,
        connect_s: float = DEFAULT_CONNECT_S,
    ) -> None:
        self.name = name
        self._clock = clock
        fixed = {"anthropic-version": API_VERSION}
        if api_key:
            fixed["x-api-key"] = api_key
        fixed.update(headers or {})
        # The HTTP transport is the same pooled client; only the headers and paths differ.
        self._http = OpenAIProvider(
            name,
            base_url=base_url or DEFAULT_BASE_URL,
            api_key=None,
            timeout_s=timeout_s,
            headers=fixed,
            connect_s=connect_s,
        )

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if request.path in self.native_paths:
            return await self._http.send(request)
        if request.path != "/chat/completions":
            raise not_served(self.name, request.path)
        payload = chat_to_anthropic_request(request.payload)
        options = request.payload.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        created = int(self._clock.now().timestamp())
        upstream = UpstreamRequest(
            path="/messages",
            body=orjson.dumps(payload),
            payload=payload,
            stream=request.stream,
            request_id=request.request_id,
            timeouts=request.timeouts,
        )
        response = await self._http.send(upstream)
        return TranslatedResponse(
            response,
            unary=lambda body: {**anthropic_to_chat_response(body), "created": created},
            stream=(lambda: AnthropicToChat(include_usage=include_usage, created=created)) if request.stream else None,
            error=to_openai_error,
        )
