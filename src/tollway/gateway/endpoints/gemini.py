"""POST /v1beta/models/{model}:generateContent and :streamGenerateContent (also under /v1): Google's Gemini
API for clients (the google-genai SDK, Gemini CLI), translated to any target through OpenAI chat like the
other formats.

The model and the method are in the path, so this is a handler that reads them and then runs the one
request flow with the endpoint for that method. The key may come as `x-goog-api-key` or `?key=` (the
gateway moves a query key into that header before anything reads the request). Errors are in Google's
shape: {"error": {"code", "message", "status"}}.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

import orjson

from tollway.clock import Clock
from tollway.errors import DomainError, NotFoundError, ValidationError
from tollway.gateway.adapt import FormatAdapter
from tollway.gateway.call import Call
from tollway.gateway.endpoint import HandlerEndpoint, LlmEndpoint, Parsed, Steps
from tollway.gateway.endpoints.gemini_embed import embed_endpoint
from tollway.gateway.errors import STREAM_CUT, ErrorFormat, error_message, status_of
from tollway.gateway.http import Receive, Scope, Send
from tollway.gateway.providers.base import Provider
from tollway.gateway.requests import parse_json_object
from tollway.gateway.routing import Target
from tollway.gateway.streaming import StreamTracker
from tollway.gateway.token_count import count_chat_tokens, with_header
from tollway.gateway.translate.gemini_client import (
    ChatToGemini,
    GeminiStreamTracker,
    chat_to_gemini_response,
    gemini_stream_error,
    gemini_to_chat_request,
)
from tollway.gateway.usage import estimate_prompt_tokens, estimate_tokens_from_text, from_gemini
from tollway.metering.llm import TokenUsage

PREFIX = "/v1beta/models/"
PREFIX_V1 = "/v1/models/"  # the google-genai SDK's default API version (GET there is the model list's)
# No provider speaks this path: every target is reached through OpenAI chat and answered in Gemini's shape.
TRANSLATED_PATH = "/gemini/generateContent"
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def google_error(status: int, message: str) -> bytes:
    """Google's error shape: {"error": {"code", "message", "status"}}."""
    name = STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return orjson.dumps({"error": {"code": status, "message": message, "status": name}})


def google_body(error: DomainError) -> bytes:
    return google_error(status_of(error), error.message)


def to_google_error(raw: bytes, status: int) -> bytes:
    """An upstream error answer for a Gemini client."""
    message, _ = error_message(raw, status)
    return google_error(status, message)


GOOGLE = ErrorFormat(google_body, to_google_error, gemini_stream_error(STREAM_CUT))


def gemini_adapter(_clock: Clock) -> Callable[[Provider], Provider]:
    def make(provider: Provider) -> Provider:
        return FormatAdapter(
            provider,
            path=TRANSLATED_PATH,
            to_chat=lambda payload: payload,  # translated when parsed (the model and stream are in the path)
            from_chat=lambda body: chat_to_gemini_response(body, str(body.get("model"))),
            stream=lambda original: ChatToGemini(str(original.get("model"))),
            error=to_google_error,
        )

    return make


def parse(body: bytes, *, model: str, stream: bool) -> Parsed:
    chat = gemini_to_chat_request(parse_json_object(body), model, stream)
    return Parsed(chat, model, stream, chat)


def build(parsed: Parsed, target: Target, _body: bytes) -> tuple[bytes, dict[str, Any]]:
    payload = {**parsed.payload, "model": target.model}
    return orjson.dumps(payload), payload


def tracker(_parsed: Parsed) -> StreamTracker:
    return GeminiStreamTracker()


def estimate(parsed: Parsed, answer: dict[str, Any]) -> TokenUsage:
    chars = 0
    for candidate in answer.get("candidates") or ():
        for part in ((candidate.get("content") or {}).get("parts") or ()) if isinstance(candidate, dict) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                chars += len(part["text"])
    return TokenUsage(input=estimate_prompt_tokens(parsed.prompt), output=estimate_tokens_from_text(chars))


GENERATE = LlmEndpoint(
    path=PREFIX + "{model}:generateContent",
    upstream_path=TRANSLATED_PATH,
    parse=lambda body: parse(body, model="", stream=False),  # replaced per request with the path's model
    build=build,
    usage_of=from_gemini,
    estimate=estimate,
    errors=GOOGLE,
    tracker=tracker,
    adapter=gemini_adapter,
    cost_comment=False,  # the google-genai SDK parses every SSE line as JSON: a comment breaks its stream
)
METHODS = {"generateContent": False, "streamGenerateContent": True}
COUNT = "countTokens"
EMBED_METHODS = {"embedContent": False, "batchEmbedContents": True}  # method -> batch


async def generate_content(flow: Steps, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
    prefix = PREFIX if scope["path"].startswith(PREFIX) else PREFIX_V1
    model, _, method = unquote(scope["path"][len(prefix) :]).rpartition(":")
    if model and method == COUNT:
        call.route = prefix + "{model}:" + method
        await count_tokens(flow, scope, receive, send, call, model)
        return
    if model and method in EMBED_METHODS:
        call.route = prefix + "{model}:" + method
        embed = embed_endpoint(call.route, model, batch=EMBED_METHODS[method], errors=GOOGLE)
        await flow.run(embed, scope, receive, send, call)
        return
    if not model or method not in METHODS:
        raise NotFoundError(
            f"Unknown request URL: {scope['method']} {scope['path']}. Tollway serves models/{{model}}:generateContent, "
            ":streamGenerateContent, :countTokens, :embedContent and :batchEmbedContents.",
            code="unknown_url",
        )
    stream = METHODS[method]
    call.route = prefix + "{model}:" + method
    endpoint = replace(GENERATE, parse=lambda body: parse(body, model=model, stream=stream))
    await flow.run(endpoint, scope, receive, send, call)


async def count_tokens(flow: Steps, scope: Scope, receive: Receive, send: Send, call: Call, model: str) -> None:
    """countTokens: {"totalTokens": N} for `contents` (or a whole `generateContentRequest`), counted as
    /v1/messages/count_tokens counts (exact for the simulator, else the documented estimate); not metered."""
    payload = parse_json_object(await flow.read(scope, receive))
    request = payload.get("generateContentRequest", payload)
    if not isinstance(request, dict):
        raise ValidationError("generateContentRequest: must be an object", field="generateContentRequest")
    chat = gemini_to_chat_request({k: v for k, v in request.items() if k != "model"}, model, False)
    count, how = count_chat_tokens(flow.resolve(call, model), chat)
    await flow.respond(with_header(send, how), call, 200, orjson.dumps({"totalTokens": count}))


GEMINI = HandlerEndpoint(
    path=PREFIX,
    handle=generate_content,
    errors=GOOGLE,
    method="POST",
    label=PREFIX + "{model}:generateContent",
    key_in_query=True,
)
GEMINI_V1 = replace(GEMINI, path=PREFIX_V1, label=PREFIX_V1 + "{model}:generateContent")
