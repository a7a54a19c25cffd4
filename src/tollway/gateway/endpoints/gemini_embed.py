"""POST /v1beta/models/{model}:embedContent and :batchEmbedContents (also under /v1): Gemini embeddings for
Google's clients (the google-genai SDK's `embed_content` posts `:batchEmbedContents`), served by any target
that serves OpenAI embeddings (the simulator, OpenAI and OpenAI-compatible servers, Azure).

Each content's text parts become one OpenAI embeddings input; `outputDimensionality` becomes `dimensions`;
`taskType`, `title` and `autoTruncate` are accepted and not passed on (OpenAI embeddings have none). The
answer is Gemini's (`embedding.values`, or `embeddings[].values`) with `usageMetadata.promptTokenCount` =
the provider's `prompt_tokens`, which is what is metered (input tokens, as for /v1/embeddings).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from tollway.clock import Clock
from tollway.errors import ValidationError
from tollway.gateway.adapt import FormatAdapter
from tollway.gateway.endpoint import LlmEndpoint, Parsed
from tollway.gateway.errors import ErrorFormat
from tollway.gateway.providers.base import Provider
from tollway.gateway.requests import parse_json_object
from tollway.gateway.routing import Target
from tollway.gateway.usage import from_gemini
from tollway.metering.llm import TokenUsage

# No provider speaks these paths: every target is reached through OpenAI embeddings.
TRANSLATED_PATH = "/gemini/embedContent"
EMBEDDINGS_PATH = "/embeddings"
ACCEPTED = frozenset({"model", "content", "taskType", "task_type", "title", "autoTruncate", "auto_truncate"})
DIMENSIONS = ("outputDimensionality", "output_dimensionality")


def _texts(content: Any, where: str) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise ValidationError(f"{where}.parts: must be a non-empty array", field=f"{where}.parts")
    texts = []
    for index, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str) or set(part) - {"text"}:
            raise ValidationError(
                f"{where}.parts[{index}]: only text parts can be embedded here", field=f"{where}.parts[{index}]"
            )
        texts.append(part["text"])
    return "\n".join(texts)


def to_embeddings(payload: dict[str, Any], model: str, *, batch: bool) -> dict[str, Any]:
    """A Gemini embedContent / batchEmbedContents body as an OpenAI embeddings request for `model`."""
    requests = payload.get("requests") if batch else [payload]
    if batch and (set(payload) - {"requests"} or not isinstance(requests, list) or not requests):
        raise ValidationError("requests: must be a non-empty array of embedContent requests", field="requests")
    assert isinstance(requests, list)
    inputs: list[str] = []
    dimensions: set[Any] = set()
    for index, request in enumerate(requests):
        where = f"requests[{index}]" if batch else "request"
        if not isinstance(request, dict):
            raise ValidationError(f"{where}: must be an object", field=where)
        for key in request:
            if key not in ACCEPTED and key not in DIMENSIONS:
                raise ValidationError(f"{where}.{key}: not supported by this gateway", field=key)
        inputs.append(_texts(request.get("content"), f"{where}.content" if batch else "content"))
        dimensions.add(next((request[k] for k in DIMENSIONS if request.get(k) is not None), None))
    out: dict[str, Any] = {"model": model, "input": inputs}
    if len(dimensions) > 1:
        raise ValidationError("outputDimensionality: must be the same for every request", field="outputDimensionality")
    size = dimensions.pop()
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValidationError("outputDimensionality: must be a positive integer", field="outputDimensionality")
        out["dimensions"] = size
    return out


def to_gemini(answer: dict[str, Any], *, batch: bool) -> dict[str, Any]:
    """An OpenAI embeddings answer in Gemini's shape, with its usage as usageMetadata."""
    rows = sorted((r for r in answer.get("data") or () if isinstance(r, dict)), key=lambda r: r.get("index", 0))
    embeddings = [{"values": row.get("embedding")} for row in rows]
    body: dict[str, Any] = {"embeddings": embeddings} if batch else {"embedding": embeddings[0] if embeddings else {}}
    usage = answer.get("usage")
    if isinstance(usage, dict):
        tokens = usage.get("prompt_tokens") or 0
        body["usageMetadata"] = {"promptTokenCount": tokens, "totalTokenCount": tokens}
    return body


def embed_adapter(
    batch: bool, error: Callable[[bytes, int], bytes]
) -> Callable[[Clock], Callable[[Provider], Provider]]:
    def adapter(_clock: Clock) -> Callable[[Provider], Provider]:
        def make(provider: Provider) -> Provider:
            return FormatAdapter(
                provider,
                path=TRANSLATED_PATH,
                to_chat=lambda payload: payload,  # translated when parsed (the model is in the path)
                from_chat=lambda body: to_gemini(body, batch=batch),
                stream=lambda _: _never(),
                error=error,
                pivot=EMBEDDINGS_PATH,
            )

        return make

    return adapter


def _never() -> Any:
    raise AssertionError("embeddings are never streamed")


def build(parsed: Parsed, target: Target, _body: bytes) -> tuple[bytes, dict[str, Any]]:
    payload = {**parsed.payload, "model": target.model}
    return orjson.dumps(payload), payload


def estimate(parsed: Parsed, _answer: dict[str, Any]) -> TokenUsage:
    return TokenUsage(input=sum(len(text) for text in parsed.payload.get("input") or ()) // 4)


def embed_endpoint(path: str, model: str, *, batch: bool, errors: ErrorFormat) -> LlmEndpoint:
    """The endpoint for one request: its model and method come from the path."""

    def parse(body: bytes) -> Parsed:
        payload = to_embeddings(parse_json_object(body), model, batch=batch)
        return Parsed(payload, model, False, payload)

    return LlmEndpoint(
        path=path,
        upstream_path=TRANSLATED_PATH,
        parse=parse,
        build=build,
        usage_of=from_gemini,
        estimate=estimate,
        errors=errors,
        adapter=embed_adapter(batch, errors.of_upstream),
    )
