"""POST /v1/responses: the OpenAI Responses API, native for OpenAI-type providers, translated for the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tollway.clock import Clock
from tollway.gateway.endpoints.adapt import AdaptedRoutes, FormatAdapter
from tollway.gateway.http import Receive, RequestError, Scope, Send
from tollway.gateway.providers.base import Provider
from tollway.gateway.relay import is_event_stream
from tollway.gateway.requests import ChatRequest, parse_json_object, require_model, upstream_body
from tollway.gateway.translate.common import to_openai_error
from tollway.gateway.translate.responses import (
    ChatToResponses,
    ResponsesStreamTracker,
    chat_to_responses_response,
    prompt_view,
    responses_stream_error,
    responses_to_chat_request,
)
from tollway.gateway.usage import estimate_prompt_tokens, estimate_tokens_from_text, from_responses
from tollway.metering.llm import TokenUsage

if TYPE_CHECKING:
    from tollway.gateway.app import Gateway
    from tollway.gateway.relay import Call

STREAM_CUT = "The upstream provider ended the stream before it was complete."


def responses_adapter(clock: Clock) -> Callable[[Provider], Provider]:
    def make(provider: Provider) -> Provider:
        return FormatAdapter(
            provider,
            path="/responses",
            to_chat=responses_to_chat_request,
            from_chat=lambda body: chat_to_responses_response(body, int(clock.now().timestamp())),
            stream=lambda _: ChatToResponses(int(clock.now().timestamp())),
            error=to_openai_error,
        )

    return make


class ResponsesEndpoint:
    path = "/v1/responses"

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._routes = AdaptedRoutes(responses_adapter(gateway._clock))

    async def __call__(self, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
        gateway = self._gateway
        body = await gateway._read(scope, receive)
        payload = parse_json_object(body)
        model = require_model(payload)
        if payload.get("input") in (None, "", []):
            raise RequestError(400, "'input' must be a non-empty string or array", param="input")
        stream = payload.get("stream") or False
        if not isinstance(stream, bool):
            raise RequestError(400, "'stream' must be a boolean", param="stream")
        route = self._routes.adapt(gateway._route(call, model))
        started_at = gateway._clock.now()
        target, response = await gateway._send_upstream(
            call,
            route,
            lambda t: upstream_body(payload, model, t.model, body),
            "/responses",
            stream=stream,
            started_at=started_at,
        )
        if stream and is_event_stream(response):
            await gateway._relay_stream(
                call,
                route,
                target,
                ChatRequest(payload=prompt_view(payload), model=model, stream=True, client_wants_usage=True),
                response,
                started_at,
                receive,
                send,
                tracker=ResponsesStreamTracker(),
                cut_tail=responses_stream_error(STREAM_CUT),
            )
            return
        await gateway._finish_unary(
            call,
            route,
            target,
            response,
            started_at,
            lambda parsed: TokenUsage(
                input=estimate_prompt_tokens(prompt_view(payload)),
                output=estimate_tokens_from_text(_output_chars(parsed)),
            ),
            send,
            usage_of=from_responses,
        )


def _output_chars(parsed: dict[str, Any] | None) -> int:
    total = 0
    for item in (parsed or {}).get("output") or ():
        for part in (item.get("content") or ()) if isinstance(item, dict) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += len(part["text"])
    return total
