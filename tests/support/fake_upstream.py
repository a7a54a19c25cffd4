"""A fake OpenAI-compatible upstream: a real HTTP server on loopback, speaking OpenAI's documented wire format.

Tests script its replies (status, body, SSE chunks, delays, a connection cut) and read back what it
received (to check what the gateway forwarded). It runs its own event loop in a thread, so sync
and async tests can use it alike.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support.loopback import LoopbackServer

DEFAULT_USAGE: dict[str, Any] = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 128,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
# What Tollway meters for one DEFAULT_USAGE, worked out by hand: 1200 prompt tokens of which 1024 cached,
# 300 completion tokens (the 128 reasoning tokens are among them).
GPT_TOKENS = {"input": 176, "cache_read": 1024, "output": 300}


@dataclass
class Reply:
    """One scripted answer. With `stream`, `chunks` are sent as SSE events."""

    status: int = 200
    body: Any = None  # dict -> JSON; bytes -> raw
    content: str = "Hello from the fake upstream."
    usage: dict[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_USAGE))
    stream_pieces: list[str] | None = None
    delay_s: float = 0.0  # before the response starts (a hang before the first byte)
    first_chunk_delay_s: float = 0.0  # stream: after the head, before the first event (a slow first token)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers (e.g. Retry-After)
    chunk_delay_s: float = 0.0  # between stream events
    cut_after: int | None = None  # stream: abort the connection after this many events
    send_usage_chunk: bool = True  # stream: honour include_usage
    send_done: bool = True
    content_type: str = "application/json"
    tool_calls: list[dict[str, Any]] | None = None  # [{"id", "type": "function", "function": {"name", "arguments"}}]


def completion_body(model: str, reply: Reply) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-fake123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
    }
    if reply.tool_calls:
        body["choices"][0]["message"]["tool_calls"] = reply.tool_calls
        body["choices"][0]["message"]["content"] = reply.content or None
        body["choices"][0]["finish_reason"] = "tool_calls"
    if reply.usage is not None:
        body["usage"] = reply.usage
    return body


def chunk_event(model: str, delta: dict[str, Any], finish: str | None, with_usage_field: bool) -> bytes:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-fake123",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if with_usage_field:
        chunk["usage"] = None
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class FakeOpenAI(LoopbackServer[Reply]):
    def __init__(self) -> None:
        super().__init__(Reply())
        self.base_url = self.origin + "/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/completions", self._completions)

    def start(self) -> FakeOpenAI:
        super().start()
        return self

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        reply = self.next_reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.status != 200 or reply.body is not None:
            return _plain(reply)
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        usage = reply.usage or {"prompt_tokens": 0, "total_tokens": 0}
        payload = {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i, _ in enumerate(items)],
            "model": body.get("model"),
            "usage": {"prompt_tokens": usage["prompt_tokens"], "total_tokens": usage["prompt_tokens"]},
        }
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        """Legacy completions: one choice of `text` per prompt; usage as on chat (a final usage chunk when a
        stream asks for it)."""
        body = await self.record(request)
        reply = self.next_reply()
        if reply.status != 200 or reply.body is not None:
            return _plain(reply)
        model = str(body.get("model"))
        prompt = body.get("prompt")
        prompts: list[Any] = prompt if isinstance(prompt, list) else [prompt]
        head = {"id": "cmpl-fake123", "object": "text_completion", "created": 1_700_000_000, "model": model}

        def choice(index: int, text: str, finish: str | None) -> dict[str, Any]:
            return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}

        if not body.get("stream"):
            choices = [choice(i, reply.content, "stop") for i in range(len(prompts))]
            return web.Response(
                body=orjson.dumps({**head, "choices": choices, "usage": reply.usage}), content_type="application/json"
            )
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in reply.content.split(" "):
            event = {**head, "choices": [choice(0, piece + " ", None)]}
            await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
        await response.write(b"data: " + orjson.dumps({**head, "choices": [choice(0, "", "stop")]}) + b"\n\n")
        if (body.get("stream_options") or {}).get("include_usage") is True:
            await response.write(b"data: " + orjson.dumps({**head, "choices": [], "usage": reply.usage}) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await _responses_handler(self, request)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        refused = chat_refusal(body)
        if refused is not None:
            return refused
        reply = self.next_reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.status != 200 or reply.body is not None:
            return _plain(reply)
        model = str(body.get("model"))
        if not body.get("stream"):
            return web.Response(body=orjson.dumps(completion_body(model, reply)), content_type="application/json")
        options = body.get("stream_options") or {}
        include_usage = options.get("include_usage") is True and reply.send_usage_chunk
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream", **reply.headers})
        await response.prepare(request)
        if reply.first_chunk_delay_s:
            await asyncio.sleep(reply.first_chunk_delay_s)
        pieces = reply.stream_pieces if reply.stream_pieces is not None else reply.content.split(" ")
        events = [chunk_event(model, {"role": "assistant", "content": ""}, None, include_usage)]
        for i, piece in enumerate(pieces if reply.content else []):
            events.append(chunk_event(model, {"content": piece if i == 0 else " " + piece}, None, include_usage))
        for i, call in enumerate(reply.tool_calls or []):
            head = {
                "index": i,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            events.append(chunk_event(model, {"tool_calls": [head]}, None, include_usage))
            arguments = call["function"]["arguments"]
            for part in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                events.append(
                    chunk_event(
                        model, {"tool_calls": [{"index": i, "function": {"arguments": part}}]}, None, include_usage
                    )
                )
        events.append(chunk_event(model, {}, "tool_calls" if reply.tool_calls else "stop", include_usage))
        if include_usage and reply.usage is not None:
            usage_chunk = {
                "id": "chatcmpl-fake123",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "choices": [],
                "usage": reply.usage,
            }
            events.append(b"data: " + orjson.dumps(usage_chunk) + b"\n\n")
        if reply.send_done:
            events.append(b"data: [DONE]\n\n")
        for index, event in enumerate(events):
            if reply.cut_after is not None and index >= reply.cut_after:
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(event)
            if reply.chunk_delay_s:
                await asyncio.sleep(reply.chunk_delay_s)
        await response.write_eof()
        return response


def chat_refusal(body: dict[str, Any]) -> web.Response | None:
    """The 400 OpenAI answers (its shape and wording) for `stream_options` on a request that does not stream."""
    if body.get("stream_options") is None or body.get("stream") is True:
        return None
    error = {
        "message": "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "type": "invalid_request_error",
        "param": "stream_options",
        "code": None,
    }
    return web.Response(status=400, body=orjson.dumps({"error": error}), content_type="application/json")


def _plain(reply: Reply) -> web.Response:
    body = reply.body
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return web.Response(status=reply.status, body=raw, content_type=reply.content_type, headers=reply.headers)


# The Responses API (platform.openai.com/docs/api-reference/responses), added beside chat completions.

DEFAULT_RESPONSES_USAGE: dict[str, Any] = {
    "input_tokens": 1200,
    "input_tokens_details": {"cached_tokens": 1024},
    "output_tokens": 300,
    "output_tokens_details": {"reasoning_tokens": 128},
    "total_tokens": 1500,
}


def responses_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """The usage a test scripted, in the Responses API's shape: as given when it is already in that shape
    (`input_tokens`), else the same counts moved from chat completions' fields (the default: 1200 in,
    1024 cached, 300 out, 128 reasoning)."""
    if usage is None or "input_tokens" in usage:
        return usage
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def response_object(model: str, text: str, usage: dict[str, Any] | None, status: str = "completed") -> dict[str, Any]:
    message = {
        "type": "message",
        "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    return {
        "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        "object": "response",
        "created_at": 1741476542,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [message] if status == "completed" else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage if status == "completed" else None,
        "user": None,
        "metadata": {},
    }


def response_events(model: str, reply: Reply) -> list[bytes]:
    usage = responses_usage(reply.usage)
    start = response_object(model, reply.content, None, "in_progress")
    final = response_object(model, reply.content, usage)
    item = final["output"][0]
    item_id = item["id"]
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {
            "type": "response.content_part.added",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []},
        },
    ]
    for i, piece in enumerate(reply.content.split(" ")):
        delta = piece if i == 0 else " " + piece
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": delta,
                "logprobs": [],
            }
        )
    events += [
        {
            "type": "response.output_text.done",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "text": reply.content,
            "logprobs": [],
        },
        {
            "type": "response.content_part.done",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "part": item["content"][0],
        },
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": final},
    ]
    out = []
    for number, event in enumerate(events):
        event["sequence_number"] = number
        out.append(b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n")
    return out


async def _responses_handler(fake: FakeOpenAI, request: web.Request) -> web.StreamResponse:
    body = await fake.record(request)
    reply = fake.next_reply()
    if reply.status != 200 or reply.body is not None:
        return _plain(reply)
    model = str(body.get("model"))
    if not body.get("stream"):
        usage = responses_usage(reply.usage)
        return web.Response(
            body=orjson.dumps(response_object(model, reply.content, usage)), content_type="application/json"
        )
    response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for index, event in enumerate(response_events(model, reply)):
        if reply.cut_after is not None and index >= reply.cut_after:
            assert request.transport is not None
            request.transport.abort()
            return response
        await response.write(event)
    await response.write_eof()
    return response
