"""POST /v1/completions: OpenAI's legacy completions (a prompt, not messages), native where the provider serves
/completions (OpenAI, vLLM, ...), translated to chat for the rest; metered like chat (same usage fields)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tollway.clock import Clock
from tollway.gateway.adapt import FormatAdapter
from tollway.gateway.endpoint import LlmEndpoint, Parsed
from tollway.gateway.errors import OPENAI, to_openai_error
from tollway.gateway.providers.base import Provider
from tollway.gateway.requests import (
    ChatRequest,
    parse_chat_options,
    parse_json_object,
    require_model,
    upstream_chat_body,
)
from tollway.gateway.routing import Target
from tollway.gateway.streaming import ChatStreamTracker, StreamTracker
from tollway.gateway.translate.completions import (
    ChatToCompletions,
    chat_to_completion_response,
    check_prompt,
    completions_to_chat_request,
)
from tollway.gateway.usage import estimate_prompt_tokens, estimate_tokens_from_text, from_openai_chat
from tollway.metering.llm import TokenUsage

NATIVE_PATH = "/completions"


def completions_adapter(_clock: Clock) -> Callable[[Provider], Provider]:
    def make(provider: Provider) -> Provider:
        return FormatAdapter(
            provider,
            path=NATIVE_PATH,
            to_chat=completions_to_chat_request,
            from_chat=chat_to_completion_response,
            stream=lambda _: ChatToCompletions(),
            error=to_openai_error,
        )

    return make


def parse(body: bytes) -> Parsed:
    payload = parse_json_object(body)
    model = require_model(payload)
    check_prompt(payload)
    stream, wants_usage = parse_chat_options(payload)
    request = ChatRequest(payload, model, stream, wants_usage)
    return Parsed(payload, model, stream, prompt_view(payload), wants_usage, request)


def prompt_view(payload: dict[str, Any]) -> dict[str, Any]:
    """A chat-shaped view of the prompt(s): what the simulator counts exactly and the estimates read."""
    prompt = payload.get("prompt")
    texts = [prompt] if isinstance(prompt, str) else [p for p in prompt or () if isinstance(p, str)]
    return {"messages": [{"role": "user", "content": text} for text in texts]}


def build(parsed: Parsed, target: Target, body: bytes) -> tuple[bytes, dict[str, Any]]:
    assert parsed.chat is not None
    return upstream_chat_body(parsed.chat, target.model, body)  # streams ask for usage, as on chat


def tracker(parsed: Parsed) -> StreamTracker:
    return ChatStreamTracker(client_wants_usage=parsed.client_wants_usage)


def estimate(parsed: Parsed, answer: dict[str, Any]) -> TokenUsage:
    chars = sum(len(c.get("text") or "") for c in answer.get("choices") or () if isinstance(c, dict))
    return TokenUsage(input=estimate_prompt_tokens(parsed.prompt), output=estimate_tokens_from_text(chars))


COMPLETIONS = LlmEndpoint(
    path="/v1/completions",
    upstream_path=NATIVE_PATH,
    parse=parse,
    build=build,
    usage_of=from_openai_chat,
    estimate=estimate,
    errors=OPENAI,
    tracker=tracker,
    adapter=completions_adapter,
)
