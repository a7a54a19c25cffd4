"""Counting a Messages request's input tokens without a call (POST /v1/messages/count_tokens), for any model.

Three sources, named in the `x-tollway-token-count` response header: `exact` where the provider counts
(Anthropic natively: its count_tokens endpoint; the simulator: its own tokenizer), `tokenizer` for a model
family whose tokenizer installs from PyPI with its files (not produced yet: tiktoken downloads its BPE
files at first use, which a gateway must not do), otherwise `estimate`: the documented estimate
(docs/clients.md) of about four characters per token plus 3 tokens per message and 3 for the reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import orjson

from tollway.errors import ValidationError
from tollway.gateway.http import Message, Send
from tollway.gateway.routing import Route
from tollway.gateway.translate.anthropic_client import anthropic_to_chat_request
from tollway.gateway.usage import estimate_prompt_tokens, estimate_tokens_from_text

HEADER = b"x-tollway-token-count"
EXACT = "exact"
ESTIMATE = "estimate"
# What a count reads of a Messages request: the rest (max_tokens, thinking, metadata ...) adds no input.
_COUNTED = ("model", "messages", "system", "tools", "tool_choice")


@runtime_checkable
class CountsTokens(Protocol):
    """A provider that counts a chat prompt exactly as it will bill it (the simulator)."""

    def count_prompt_tokens(self, payload: Mapping[str, Any]) -> int: ...


def count_input_tokens(route: Route, payload: dict[str, Any]) -> tuple[int, str]:
    """The input tokens of a Messages request for the route's first target, and how they were counted."""
    counted = {key: payload[key] for key in _COUNTED if key in payload}
    try:
        chat = anthropic_to_chat_request({**counted, "max_tokens": 1})
    except ValidationError:
        chat = None  # a request only Claude could take: its text is still estimated
    if chat is None:
        rest = {k: v for k, v in counted.items() if k != "model"}
        return estimate_tokens_from_text(len(orjson.dumps(rest))), ESTIMATE
    return count_chat_tokens(route, chat)


def count_chat_tokens(route: Route, chat: Mapping[str, Any]) -> tuple[int, str]:
    """A chat prompt's tokens for the route's first target: exact where it counts itself, else the estimate."""
    provider = route.targets[0].provider if route.targets else None
    if isinstance(provider, CountsTokens):
        return provider.count_prompt_tokens(chat), EXACT
    return estimate_chat_prompt(chat), ESTIMATE


def estimate_chat_prompt(chat: Mapping[str, Any]) -> int:
    """The documented estimate of a chat prompt, tool definitions included (about four characters a token)."""
    total = estimate_prompt_tokens(chat)
    if chat.get("tools"):
        total += estimate_tokens_from_text(len(orjson.dumps(chat["tools"])))
    return total


def with_header(send: Send, value: str) -> Send:
    """`send` with the x-tollway-token-count header added to the response's start."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), (HEADER, value.encode())]}
        await send(message)

    return sending
