"""Google's Gemini API (generateContent / streamGenerateContent), reached by translating OpenAI chat."""

from __future__ import annotations

from urllib.parse import quote

import orjson

from tollway.clock import Clock
from tollway.gateway.errors import to_openai_error
from tollway.gateway.providers.base import UpstreamRequest, UpstreamResponse, not_served
from tollway.gateway.providers.openai import DEFAULT_CONNECT_S, OpenAIProvider
from tollway.gateway.providers.translated import TranslatedResponse
from tollway.gateway.translate.gemini import GeminiToChat, chat_to_gemini_request, gemini_to_chat_response

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"


class GeminiProvider:
    native_paths: frozenset[str] = frozenset()

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
        fixed = {"x-goog-api-key": api_key} if api_key else {}
        fixed.update(headers or {})
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
        if request.path != "/chat/completions":
            raise not_served(self.name, request.path)
        model = str(request.payload["model"])
        payload = chat_to_gemini_request(request.payload)
        method = ":streamGenerateContent?alt=sse" if request.stream else ":generateContent"
        upstream = UpstreamRequest(
            path=f"/models/{quote(model, safe='')}{method}",
            body=orjson.dumps(payload),
            payload=payload,
            stream=request.stream,
            request_id=request.request_id,
            timeouts=request.timeouts,
        )
        options = request.payload.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        created = int(self._clock.now().timestamp())
        response = await self._http.send(upstream)
        return TranslatedResponse(
            response,
            unary=lambda body: gemini_to_chat_response(body, model=model, created=created),
            stream=(lambda: GeminiToChat(model=model, include_usage=include_usage, created=created))
            if request.stream
            else None,
            error=to_openai_error,
        )
