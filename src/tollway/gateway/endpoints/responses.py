"""POST /v1/responses: the OpenAI Responses API, native for OpenAI-type providers, translated for the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from tollway.clock import Clock
from tollway.errors import ValidationError
from tollway.gateway.adapt import FormatAdapter
from tollway.gateway.endpoint import LlmEndpoint, Parsed
from tollway.gateway.errors import OPENAI, STREAM_CUT, ErrorFormat, to_openai_error
from tollway.gateway.providers.base import Provider
from tollway.gateway.requests import parse_json_object, require_model, upstream_body
from tollway.gateway.routing import Target
from tollway.gateway.streaming import StreamTracker
from tollway.gateway.translate.common import unsupported
from tollway.gateway.translate.responses import (
    ChatToResponses,
    ResponsesStreamTracker,
    chat_to_responses_response,
    prompt_view,
    responses_stream_error,
    responses_to_chat_request,
)
from tollway.gateway.translate.responses_relax import relax_for_chat
from tollway.gateway.usage import estimate_prompt_tokens, estimate_tokens_from_text, from_responses
from tollway.metering.llm import TokenUsage

NATIVE_PATH = "/responses"
RESPONSES_ERRORS = ErrorFormat(OPENAI.of_error, OPENAI.of_upstream, responses_stream_error(STREAM_CUT))


def responses_adapter(clock: Clock) -> Callable[[Provider], Provider]:
    def make(provider: Provider) -> Provider:
        return FormatAdapter(
            provider,
            path=NATIVE_PATH,
            to_chat=responses_to_chat_request,
            from_chat=lambda body: chat_to_responses_response(body, int(clock.now().timestamp())),
            stream=lambda _: ChatToResponses(int(clock.now().timestamp())),
            error=to_openai_error,
        )

    return make


def parse(body: bytes) -> Parsed:
    payload = parse_json_object(body)
    model = require_model(payload)
    if payload.get("input") in (None, "", []):
        raise ValidationError("'input' must be a non-empty string or array", field="input")
    stream = payload.get("stream") or False
    if not isinstance(stream, bool):
        raise ValidationError("'stream' must be a boolean", field="stream")
    return Parsed(payload, model, stream, prompt_view(payload))


def build(parsed: Parsed, target: Target, body: bytes) -> tuple[bytes, dict[str, Any]]:
    """Natively the client's request as sent; translated, without what only the Responses service honours
    (named in x-tollway-dropped), or a 400 naming it when the model's translation is strict."""
    if NATIVE_PATH in target.provider.native_paths:
        return upstream_body(parsed.payload, parsed.model, target.model, body)
    payload, dropped = relax_for_chat(parsed.payload)
    if dropped and parsed.strict:
        raise unsupported(dropped[0], "this model's translation is strict (translation: strict)")
    parsed.dropped = tuple(dropped)
    if payload is parsed.payload:
        return upstream_body(payload, parsed.model, target.model, body)
    rewritten = {**payload, "model": target.model}
    return orjson.dumps(rewritten), rewritten


def tracker(_parsed: Parsed) -> StreamTracker:
    return ResponsesStreamTracker()


def estimate(parsed: Parsed, answer: dict[str, Any]) -> TokenUsage:
    return TokenUsage(
        input=estimate_prompt_tokens(parsed.prompt), output=estimate_tokens_from_text(_output_chars(answer))
    )


def _output_chars(parsed: dict[str, Any] | None) -> int:
    total = 0
    for item in (parsed or {}).get("output") or ():
        for part in (item.get("content") or ()) if isinstance(item, dict) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += len(part["text"])
    return total


RESPONSES = LlmEndpoint(
    path="/v1/responses",
    upstream_path="/responses",
    parse=parse,
    build=build,
    usage_of=from_responses,
    estimate=estimate,
    errors=RESPONSES_ERRORS,
    tracker=tracker,
    adapter=responses_adapter,
)
