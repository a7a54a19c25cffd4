"""POST /v1/messages: the Anthropic Messages API, for Claude models natively and any other model translated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tollway.gateway.endpoints.adapt import AdaptedRoutes, FormatAdapter
from tollway.gateway.http import Receive, RequestError, Scope, Send, send_bytes
from tollway.gateway.providers.base import Provider, UpstreamError, UpstreamRequest
from tollway.gateway.relay import is_event_stream
from tollway.gateway.requests import ChatRequest, parse_json_object, require_model, upstream_body
from tollway.gateway.translate.anthropic import anthropic_to_chat_request, chat_to_anthropic_response
from tollway.gateway.translate.anthropic_stream import AnthropicStreamTracker, ChatToAnthropic, anthropic_stream_error
from tollway.gateway.translate.common import request_error_as_anthropic, to_anthropic_error
from tollway.gateway.usage import estimate_prompt_tokens, estimate_tokens_from_text, from_anthropic
from tollway.metering.llm import TokenUsage

if TYPE_CHECKING:
    from tollway.gateway.app import Gateway
    from tollway.gateway.relay import Call

STREAM_CUT = "The upstream provider ended the stream before it was complete."
# Client headers passed on to providers that speak the Messages API natively (Claude Code opts into
# features this way). Credentials and anthropic-version stay the provider's own.
PASSED_ON = (b"anthropic-beta",)


def messages_adapter(provider: Provider) -> Provider:
    return FormatAdapter(
        provider,
        path="/messages",
        to_chat=anthropic_to_chat_request,
        from_chat=chat_to_anthropic_response,
        stream=lambda _: ChatToAnthropic(),
        error=to_anthropic_error,
    )


class MessagesEndpoint:
    path = "/v1/messages"

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._routes = AdaptedRoutes(messages_adapter)

    @staticmethod
    def error_shape(error: RequestError) -> bytes:
        return request_error_as_anthropic(error)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
        gateway = self._gateway
        body = await gateway._read(scope, receive)
        payload = parse_json_object(body)
        model = require_model(payload)
        stream = _check(payload)
        route = self._routes.adapt(gateway._route(call, model), _passed_on(scope))
        started_at = gateway._clock.now()
        target, response = await gateway._send_upstream(
            call,
            route,
            lambda t: upstream_body(payload, model, t.model, body),
            "/messages",
            stream=stream,
            started_at=started_at,
        )
        if stream and is_event_stream(response):
            await gateway._relay_stream(
                call,
                route,
                target,
                ChatRequest(payload=payload, model=model, stream=True, client_wants_usage=True),
                response,
                started_at,
                receive,
                send,
                tracker=AnthropicStreamTracker(),
                cut_tail=anthropic_stream_error(STREAM_CUT),
            )
            return
        await gateway._finish_unary(
            call,
            route,
            target,
            response,
            started_at,
            lambda parsed: TokenUsage(
                input=estimate_prompt_tokens(payload), output=estimate_tokens_from_text(_text_chars(parsed))
            ),
            send,
            usage_of=from_anthropic,
            error_shape=to_anthropic_error,
        )


def _passed_on(scope: Scope) -> tuple[tuple[str, str], ...]:
    return tuple(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"] if name in PASSED_ON
    )


def _check(payload: dict[str, Any]) -> bool:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages: must be a non-empty array", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise RequestError(400, f"messages.{index}.role: must be 'user' or 'assistant'", param="messages")
    limit = payload.get("max_tokens")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise RequestError(400, "max_tokens: Field required (a positive integer)", param="max_tokens")
    stream = payload.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise RequestError(400, "stream: must be a boolean", param="stream")
    return stream


def _text_chars(parsed: dict[str, Any] | None) -> int:
    total = 0
    for block in (parsed or {}).get("content") or ():
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            total += len(block["text"])
    return total


class CountTokensEndpoint:
    """POST /v1/messages/count_tokens: Anthropic's free token count, for models served by Anthropic natively.

    Nothing is metered (no tokens are generated or billed upstream). Other providers have no such call:
    the request gets a 400 rather than an invented count.
    """

    path = "/v1/messages/count_tokens"

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
        gateway = self._gateway
        body = await gateway._read(scope, receive)
        payload = parse_json_object(body)
        model = require_model(payload)
        route = gateway._route(call, model)
        target = next((t for t in route.targets if "/messages/count_tokens" in t.provider.native_paths), None)
        if target is None:
            raise RequestError(
                400,
                f"Token counting is available only for models served by Anthropic natively; '{model}' is not.",
                param="model",
                code="unsupported_endpoint",
            )
        outgoing, rewritten = upstream_body(payload, model, target.model, body)
        request = UpstreamRequest(
            path="/messages/count_tokens",
            body=outgoing,
            payload=rewritten,
            stream=False,
            request_id=call.request_id,
            headers=_passed_on(scope),
        )
        try:
            response = await target.provider.send(request)
            raw = await response.read()
        except UpstreamError as error:
            raise RequestError(502, f"The upstream provider could not be reached: {error}") from None
        status = response.status
        out = to_anthropic_error(raw, status) if status >= 400 else raw
        await send_bytes(send, status, out, call.id_bytes)
        gateway._observe(call, status)
