"""A fake Anthropic Messages API on loopback, faithful to the documented wire format.

Non-streamed: a `message` object with `usage` {input_tokens, output_tokens, cache_creation_input_tokens,
cache_read_input_tokens}. Streamed: message_start (usage with output_tokens 1), per block
content_block_start / content_block_delta* / content_block_stop, a `ping`, message_delta with the
cumulative usage, message_stop (docs.anthropic.com "Streaming Messages").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support.loopback import LoopbackServer, sse, write_events

DEFAULT_USAGE: dict[str, int] = {
    "input_tokens": 472,
    "cache_creation_input_tokens": 2048,
    "cache_read_input_tokens": 1536,
    "output_tokens": 503,
}
# What Tollway meters for one DEFAULT_USAGE: Anthropic's input_tokens are already the uncached ones.
CLAUDE_TOKENS = {"input": 472, "cache_write": 2048, "cache_read": 1536, "output": 503}


@dataclass
class AnthropicReply:
    status: int = 200
    body: Any = None  # an error body to send as is
    blocks: list[dict[str, Any]] = field(default_factory=lambda: [{"type": "text", "text": "Hello from Claude."}])
    stop_reason: str = "end_turn"
    usage: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_USAGE))
    cut_after: int | None = None
    chunk_delay_s: float = 0.0  # stream: pause between events


def text_reply(text: str, **kwargs: Any) -> AnthropicReply:
    return AnthropicReply(blocks=[{"type": "text", "text": text}], **kwargs)


def tool_reply(name: str, arguments: dict[str, Any], text: str = "", **kwargs: Any) -> AnthropicReply:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    blocks.append({"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": name, "input": arguments})
    return AnthropicReply(blocks=blocks, stop_reason="tool_use", **kwargs)


class FakeAnthropic(LoopbackServer[AnthropicReply]):
    def __init__(self) -> None:
        super().__init__(AnthropicReply())
        self.base_url = self.origin + "/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        refused = refusal(request, None)
        if refused is not None:
            return refused
        return web.Response(body=b'{"input_tokens": 2095}', content_type="application/json")

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        refused = refusal(request, body)
        if refused is not None:
            return refused
        reply = self.next_reply()
        if reply.status != 200 or reply.body is not None:
            return web.Response(status=reply.status, body=orjson.dumps(reply.body), content_type="application/json")
        model = str(body.get("model"))
        message = {
            "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": reply.blocks,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": reply.usage,
        }
        if not body.get("stream"):
            return web.Response(body=orjson.dumps(message), content_type="application/json")
        start_usage = {**reply.usage, "output_tokens": 1}
        events = [
            sse(
                {
                    "type": "message_start",
                    "message": {**message, "content": [], "stop_reason": None, "usage": start_usage},
                },
                "message_start",
            )
        ]
        for index, block in enumerate(reply.blocks):
            events.extend(_block_events(index, block))
            if index == 0:
                events.append(sse({"type": "ping"}, "ping"))
        delta_usage = {"output_tokens": reply.usage["output_tokens"]}
        events.append(
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                    "usage": delta_usage,
                },
                "message_delta",
            )
        )
        events.append(sse({"type": "message_stop"}, "message_stop"))
        return await write_events(request, events, cut_after=reply.cut_after, chunk_delay_s=reply.chunk_delay_s)


def refusal(request: web.Request, body: dict[str, Any] | None) -> web.Response | None:
    """The 400 Anthropic answers (its error shape and wording) for a request without the `anthropic-version`
    header or, on /v1/messages (`body` given), without `max_tokens`."""
    if "anthropic-version" not in request.headers:
        message = "anthropic-version: header is required"
    elif body is not None and "max_tokens" not in body:
        message = "max_tokens: Field required"
    else:
        return None
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return web.Response(status=400, body=orjson.dumps(error), content_type="application/json")


def _block_events(index: int, block: dict[str, Any]) -> list[bytes]:
    if block["type"] == "text":
        start = {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
        words = block["text"].split(" ")
        deltas = [{"type": "text_delta", "text": w if i == 0 else " " + w} for i, w in enumerate(words)]
    else:
        start = {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}}
        arguments = orjson.dumps(block["input"]).decode()
        middle = len(arguments) // 2
        pieces = ["", arguments[:middle], arguments[middle:]]
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
    events = [sse(start, "content_block_start")]
    events.extend(
        sse({"type": "content_block_delta", "index": index, "delta": d}, "content_block_delta") for d in deltas
    )
    events.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    return events
