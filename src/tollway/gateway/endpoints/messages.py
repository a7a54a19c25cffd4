"""POST /v1/messages (and /v1/messages/count_tokens): the Anthropic Messages API, for Claude models
natively and any other model translated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from tollway.clock import Clock
from tollway.errors import UpstreamFailedError, ValidationError
from tollway.gateway.adapt import FormatAdapter
from tollway.gateway.call import Call
from tollway.gateway.endpoint import HandlerEndpoint, LlmEndpoint, Parsed, Steps, passed_on
from tollway.gateway.errors import STREAM_CUT, ErrorFormat, anthropic_body, to_anthropic_error
from tollway.gateway.http import Receive, Scope, Send
from tollway.gateway.providers.base import Provider, UpstreamError, UpstreamRequest
from tollway.gateway.relay import CREDENTIALS_REFUSED
from tollway.gateway.requests import parse_json_object, require_model, upstream_body
from tollway.gateway.routing import Target
from tollway.gateway.streaming import StreamTracker
from tollway.gateway.token_count import EXACT, count_input_tokens, with_header
from tollway.gateway.translate.anthropic_client import (
    anthropic_to_chat_request,
    chat_to_anthropic_response,
    relax_for_chat,
)
from tollway.gateway.translate.anthropic_stream import AnthropicStreamTracker, ChatToAnthropic, anthropic_stream_error
from tollway.gateway.translate.common import unsupported
from tollway.gateway.usage import estimate_prompt_tokens, estimate_tokens_from_text, from_anthropic
from tollway.metering.llm import TokenUsage

# Client headers passed on to providers that speak the Messages API natively (Claude Code opts into
# features this way). Credentials and anthropic-version stay the provider's own.
PASSED_ON = (b"anthropic-beta",)
NATIVE_PATH = "/messages"
CHAT_PATH = "/chat/completions"
ANTHROPIC = ErrorFormat(anthropic_body, to_anthropic_error, anthropic_stream_error(STREAM_CUT))


def messages_adapter(_clock: Clock) -> Callable[[Provider], Provider]:
    def make(provider: Provider) -> Provider:
        return FormatAdapter(
            provider,
            path=NATIVE_PATH,
            to_chat=anthropic_to_chat_request,
            from_chat=chat_to_anthropic_response,
            stream=lambda _: ChatToAnthropic(),
            error=to_anthropic_error,
        )

    return make


def parse(body: bytes) -> Parsed:
    payload = parse_json_object(body)
    model = require_model(payload)
    return Parsed(payload, model, _check(payload), payload)


def build(parsed: Parsed, target: Target, body: bytes) -> tuple[bytes, dict[str, Any]]:
    """Natively the client's request as sent; translated, without what only Claude uses (named in
    x-tollway-dropped), or a 400 naming it when the model's translation is strict."""
    if NATIVE_PATH in target.provider.native_paths:
        return upstream_body(parsed.payload, parsed.model, target.model, body)
    # A provider that does not take OpenAI chat either is reached through a second translation (Gemini),
    # which has no end-user field.
    payload, dropped = relax_for_chat(parsed.payload, end_user=CHAT_PATH in target.provider.native_paths)
    if dropped and parsed.strict:
        raise unsupported(dropped[0], "this model's translation is strict (translation: strict)")
    parsed.dropped = tuple(dropped)
    if payload is parsed.payload:
        return upstream_body(payload, parsed.model, target.model, body)
    rewritten = {**payload, "model": target.model}
    return orjson.dumps(rewritten), rewritten


def tracker(_parsed: Parsed) -> StreamTracker:
    return AnthropicStreamTracker()


def estimate(parsed: Parsed, answer: dict[str, Any]) -> TokenUsage:
    return TokenUsage(
        input=estimate_prompt_tokens(parsed.prompt), output=estimate_tokens_from_text(_text_chars(answer))
    )


def _check(payload: dict[str, Any]) -> bool:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValidationError("messages: must be a non-empty array", field="messages")
    for index, message in enumerate(messages):
        # "system": a mid-conversation system message (beta mid-conversation-system-2026-04-07)
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
            raise ValidationError(
                f"messages.{index}.role: Input should be 'user', 'assistant' or 'system'", field="messages"
            )
    limit = payload.get("max_tokens")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError("max_tokens: Field required (a positive integer)", field="max_tokens")
    stream = payload.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise ValidationError("stream: must be a boolean", field="stream")
    return stream


def _text_chars(parsed: dict[str, Any] | None) -> int:
    total = 0
    for block in (parsed or {}).get("content") or ():
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            total += len(block["text"])
    return total


MESSAGES = LlmEndpoint(
    path="/v1/messages",
    upstream_path="/messages",
    parse=parse,
    build=build,
    usage_of=from_anthropic,
    estimate=estimate,
    errors=ANTHROPIC,
    tracker=tracker,
    adapter=messages_adapter,
    passed_on=PASSED_ON,
)


async def count_tokens(flow: Steps, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
    """Anthropic's free token count, for every model: Anthropic's own where a target serves the Messages API
    natively, else counted here (token_count.py); the x-tollway-token-count header says how.

    Nothing is metered (no tokens are generated or billed upstream), so nothing is admitted either.
    """
    body = await flow.read(scope, receive)
    payload = parse_json_object(body)
    model = require_model(payload)
    route = flow.resolve(call, model)
    target = next((t for t in route.targets if "/messages/count_tokens" in t.provider.native_paths), None)
    if target is None:
        count, how = count_input_tokens(route, payload)
        await flow.respond(with_header(send, how), call, 200, orjson.dumps({"input_tokens": count}))
        return
    outgoing, rewritten = upstream_body(payload, model, target.model, body)
    request = UpstreamRequest(
        path="/messages/count_tokens",
        body=outgoing,
        payload=rewritten,
        stream=False,
        request_id=call.request_id,
        headers=passed_on(scope, PASSED_ON),
    )
    try:
        response = await target.provider.send(request)
        raw = await response.read()
    except UpstreamError as error:
        raise UpstreamFailedError(f"The upstream provider could not be reached: {error}") from None
    status = response.status
    if status in CREDENTIALS_REFUSED:
        raise flow.credentials_refused(target.provider.name)
    answer = to_anthropic_error(raw, status) if status >= 400 else raw
    await flow.respond(with_header(send, EXACT) if status < 400 else send, call, status, answer)


COUNT_TOKENS = HandlerEndpoint(path="/v1/messages/count_tokens", handle=count_tokens, errors=ANTHROPIC, method="POST")
