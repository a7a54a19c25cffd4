"""POST /v1/chat/completions: OpenAI chat, served natively by every provider (translated inside the provider)."""

from __future__ import annotations

from typing import Any

from tollway.gateway.endpoint import LlmEndpoint, Parsed
from tollway.gateway.errors import OPENAI
from tollway.gateway.requests import ChatRequest, parse_chat_request, upstream_chat_body
from tollway.gateway.routing import Target
from tollway.gateway.streaming import ChatStreamTracker, StreamTracker
from tollway.gateway.usage import estimate_prompt_tokens, estimate_tokens_from_text, from_openai_chat
from tollway.metering.llm import TokenUsage


def parse(body: bytes) -> Parsed:
    request = parse_chat_request(body)
    return Parsed(request.payload, request.model, request.stream, request.payload, request.client_wants_usage, request)


def build(parsed: Parsed, target: Target, body: bytes) -> tuple[bytes, dict[str, Any]]:
    request = parsed.chat or ChatRequest(parsed.payload, parsed.model, parsed.stream, parsed.client_wants_usage)
    return upstream_chat_body(request, target.model, body)


def tracker(parsed: Parsed) -> StreamTracker:
    return ChatStreamTracker(client_wants_usage=parsed.client_wants_usage)


def estimate(parsed: Parsed, answer: dict[str, Any]) -> TokenUsage:
    return TokenUsage(
        input=estimate_prompt_tokens(parsed.prompt), output=estimate_tokens_from_text(completion_chars(answer))
    )


def completion_chars(answer: dict[str, Any]) -> int:
    total = 0
    for choice in answer.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            total += len(message["content"])
    return total


CHAT_COMPLETIONS = LlmEndpoint(
    path="/v1/chat/completions",
    upstream_path="/chat/completions",
    parse=parse,
    build=build,
    usage_of=from_openai_chat,
    estimate=estimate,
    errors=OPENAI,
    tracker=tracker,
)
