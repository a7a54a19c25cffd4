"""POST /v1/embeddings: OpenAI embeddings, never streamed; usage is input tokens only."""

from __future__ import annotations

from typing import Any

from tollway.gateway.endpoint import LlmEndpoint, Parsed
from tollway.gateway.errors import OPENAI
from tollway.gateway.requests import parse_embeddings_request, upstream_body
from tollway.gateway.routing import Target
from tollway.gateway.usage import from_openai_chat
from tollway.metering.llm import TokenUsage


def parse(body: bytes) -> Parsed:
    payload, model = parse_embeddings_request(body)
    return Parsed(payload, model, False, payload)


def build(parsed: Parsed, target: Target, body: bytes) -> tuple[bytes, dict[str, Any]]:
    return upstream_body(parsed.payload, parsed.model, target.model, body)


def estimate(parsed: Parsed, answer: dict[str, Any]) -> TokenUsage:
    return TokenUsage(input=input_chars(parsed.payload) // 4)


def input_chars(payload: dict[str, Any]) -> int:
    items = payload.get("input")
    return sum(len(i) for i in (items if isinstance(items, list) else [items]) if isinstance(i, str))


EMBEDDINGS = LlmEndpoint(
    path="/v1/embeddings",
    upstream_path="/embeddings",
    parse=parse,
    build=build,
    usage_of=from_openai_chat,
    estimate=estimate,
    errors=OPENAI,
)
