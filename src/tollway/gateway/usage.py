"""Usage extraction: provider usage blocks -> disjoint token counts (pure functions).

Token types are disjoint (docs/architecture.md): `input` excludes cached tokens, `output` includes reasoning
tokens; reasoning is also kept on its own for reporting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tollway.metering.llm import TokenUsage


def _count(value: Any) -> int:
    """A token count as reported; anything that is not a non-negative integer counts as 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def _details(usage: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    details = usage.get(key)
    return details if isinstance(details, Mapping) else {}


def from_openai_chat(usage: Mapping[str, Any]) -> TokenUsage:
    """OpenAI chat completions / embeddings usage (`prompt_tokens`, `completion_tokens`, details).

    Read on every call: a plain non-negative int and an absent field are taken without a call to `_count`."""
    prompt = usage.get("prompt_tokens")
    if type(prompt) is not int or prompt < 0:
        prompt = _count(prompt)
    completion = usage.get("completion_tokens")
    if type(completion) is not int or completion < 0:
        completion = _count(completion)
    cached = 0
    if usage.get("prompt_tokens_details") is not None:
        cached = min(_count(_details(usage, "prompt_tokens_details").get("cached_tokens")), prompt)
    # Cache writes have no OpenAI field; translated Anthropic usage (and LiteLLM) report them here,
    # counted inside prompt_tokens.
    written = 0
    if (creation := usage.get("cache_creation_input_tokens")) is not None:
        written = min(_count(creation), prompt - cached)
    reasoning = 0
    if usage.get("completion_tokens_details") is not None:
        reasoning = min(_count(_details(usage, "completion_tokens_details").get("reasoning_tokens")), completion)
    return TokenUsage(prompt - cached - written, completion, cached, written, reasoning)


def from_anthropic(usage: Mapping[str, Any]) -> TokenUsage:
    """Anthropic Messages usage: `input_tokens` already excludes both kinds of cache tokens."""
    reasoning = _count(_details(usage, "output_tokens_details").get("thinking_tokens"))
    output = _count(usage.get("output_tokens"))
    return TokenUsage(
        input=_count(usage.get("input_tokens")),
        output=output,
        cache_read=_count(usage.get("cache_read_input_tokens")),
        cache_write=_count(usage.get("cache_creation_input_tokens")),
        reasoning=min(reasoning, output),
    )


def from_gemini(metadata: Mapping[str, Any]) -> TokenUsage:
    """Gemini `usageMetadata`: promptTokenCount includes cached tokens; thoughts are not in candidates."""
    prompt = _count(metadata.get("promptTokenCount")) + _count(metadata.get("toolUsePromptTokenCount"))
    cached = min(_count(metadata.get("cachedContentTokenCount")), prompt)
    thoughts = _count(metadata.get("thoughtsTokenCount"))
    return TokenUsage(
        input=prompt - cached,
        output=_count(metadata.get("candidatesTokenCount")) + thoughts,
        cache_read=cached,
        reasoning=thoughts,
    )


def from_responses(usage: Mapping[str, Any]) -> TokenUsage:
    """OpenAI Responses usage (`input_tokens`, `output_tokens` and their details)."""
    prompt = _count(usage.get("input_tokens"))
    output = _count(usage.get("output_tokens"))
    cached = min(_count(_details(usage, "input_tokens_details").get("cached_tokens")), prompt)
    written = min(_count(usage.get("cache_creation_input_tokens")), prompt - cached)
    reasoning = _count(_details(usage, "output_tokens_details").get("reasoning_tokens"))
    return TokenUsage(
        input=prompt - cached - written,
        output=output,
        cache_read=cached,
        cache_write=written,
        reasoning=min(reasoning, output),
    )


def to_openai_chat(usage: TokenUsage) -> dict[str, Any]:
    """The same counts as an OpenAI chat usage block (cache writes in `cache_creation_input_tokens`)."""
    prompt = usage.input + usage.cache_read + usage.cache_write
    block: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output,
        "total_tokens": prompt + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
    }
    if usage.cache_write:
        block["cache_creation_input_tokens"] = usage.cache_write
    return block


def to_anthropic(usage: TokenUsage) -> dict[str, Any]:
    block: dict[str, Any] = {
        "input_tokens": usage.input,
        "output_tokens": usage.output,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
    }
    if usage.reasoning:
        block["output_tokens_details"] = {"thinking_tokens": usage.reasoning}
    return block


def to_responses(usage: TokenUsage) -> dict[str, Any]:
    prompt = usage.input + usage.cache_read + usage.cache_write
    block: dict[str, Any] = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": usage.cache_read},
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": prompt + usage.output,
    }
    if usage.cache_write:
        block["cache_creation_input_tokens"] = usage.cache_write
    return block


def estimate_tokens_from_text(characters: int) -> int:
    """About four characters per token for English text (OpenAI's rule of thumb), rounded up."""
    return (characters + 3) // 4


def estimate_prompt_tokens(payload: Mapping[str, Any]) -> int:
    """A documented estimate of a chat prompt's size, used only when the upstream reported none."""
    total = 3
    messages = payload.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, Mapping):
            continue
        total += 3
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_tokens_from_text(len(content))
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    total += estimate_tokens_from_text(len(part["text"]))
    return total


def usage_block_from_tail(tail: bytes) -> Mapping[str, Any] | None:
    """The last `"usage": {...}` object in the end of a JSON document, or None.

    Used for answers too large to hold in memory: OpenAI-compatible servers write usage last.
    """
    key = tail.rfind(b'"usage"')
    if key < 0:
        return None
    colon = tail.find(b":", key + 7)
    if colon < 0:
        return None
    text = tail[colon + 1 :].decode("utf-8", "replace").lstrip()
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
