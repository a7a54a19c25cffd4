"""Streams between OpenAI chat chunks and Anthropic Messages events, and the Anthropic usage tracker.

Anthropic: message_start, then per content block content_block_start / content_block_delta* /
content_block_stop, then message_delta (stop_reason and cumulative usage) and message_stop;
`ping` and `error` events may come in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tollway.gateway.decode import json_object
from tollway.gateway.streaming import event_data
from tollway.gateway.translate.anthropic import FINISH_TO_STOP, STOP_TO_FINISH
from tollway.gateway.translate.common import sse, sse_json
from tollway.gateway.usage import from_anthropic, from_openai_chat, to_anthropic, to_openai_chat
from tollway.metering.llm import TokenUsage


def merge_anthropic_usage(current: dict[str, Any], update: Any) -> None:
    """message_delta usage is cumulative: each field present replaces the earlier value, never adds."""
    if isinstance(update, Mapping):
        for key, value in update.items():
            if value is not None:
                current[key] = value


class AnthropicToChat:
    """Anthropic events -> OpenAI chat completion chunks (for OpenAI clients of Claude models)."""

    def __init__(self, *, include_usage: bool, created: int) -> None:
        self._include_usage = include_usage
        self._created = created
        self._id = "chatcmpl-tollway"
        self._model: Any = None
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # anthropic block index -> openai tool call index
        self._tool_args: set[int] = set()
        self._done = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return sse(body)

    def feed(self, event: bytes) -> bytes:
        data = sse_json(event)
        if data is None or self._done:
            return b""
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message") or {}
            self._id = str(message.get("id") or self._id)
            self._model = message.get("model")
            merge_anthropic_usage(self._usage, message.get("usage"))
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "content_block_start":
            return self._block_start(int(data.get("index", 0)), data.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(data.get("index", 0)), data.get("delta") or {})
        if kind == "content_block_stop":
            index = int(data.get("index", 0))
            if index in self._tools and index not in self._tool_args:
                return self._chunk({"tool_calls": [{"index": self._tools[index], "function": {"arguments": "{}"}}]})
            return b""
        if kind == "message_delta":
            merge_anthropic_usage(self._usage, data.get("usage"))
            stop = (data.get("delta") or {}).get("stop_reason")
            return self._chunk({}, STOP_TO_FINISH.get(str(stop), "stop")) if stop else b""
        if kind == "message_stop":
            self._done = True
            out = b""
            if self._include_usage and self._usage:
                usage = to_openai_chat(from_anthropic(self._usage))
                body = {
                    "id": self._id,
                    "object": "chat.completion.chunk",
                    "created": self._created,
                    "model": self._model,
                    "choices": [],
                    "usage": usage,
                }
                out = sse(body)
            return out + b"data: [DONE]\n\n"
        if kind == "error":
            error = data.get("error") or {}
            return sse(
                {"error": {"message": error.get("message"), "type": error.get("type"), "param": None, "code": None}}
            )
        return b""

    def _block_start(self, index: int, block: Mapping[str, Any]) -> bytes:
        if block.get("type") == "tool_use":
            position = len(self._tools)
            self._tools[index] = position
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return self._chunk({"tool_calls": [call]})
        if block.get("type") == "text" and block.get("text"):
            return self._chunk({"content": block["text"]})
        return b""

    def _block_delta(self, index: int, delta: Mapping[str, Any]) -> bytes:
        kind = delta.get("type")
        if kind == "text_delta":
            return self._chunk({"content": delta.get("text", "")})
        if kind == "thinking_delta":
            return self._chunk({"reasoning_content": delta.get("thinking", "")})
        if kind == "input_json_delta" and index in self._tools and delta.get("partial_json"):
            self._tool_args.add(index)
            call = {"index": self._tools[index], "function": {"arguments": delta["partial_json"]}}
            return self._chunk({"tool_calls": [call]})
        return b""

    def finish(self) -> bytes:
        return b""


class ChatToAnthropic:
    """OpenAI chat completion chunks -> Anthropic events (for Anthropic clients of OpenAI-format models)."""

    def __init__(self) -> None:
        self._started = False
        self._stopped = False
        self._block = -1
        self._open: str | None = None  # "text" or "tool"
        self._tools: dict[int, int] = {}  # openai tool call index -> anthropic block index
        self._finish: str | None = None
        self._usage: TokenUsage | None = None

    def feed(self, event: bytes) -> bytes:
        raw = event_data(event)
        if raw is None or self._stopped:
            return b""
        if raw == b"[DONE]":
            return self._close()
        chunk = json_object(raw)
        if chunk is None:
            return b""
        if isinstance(chunk.get("error"), Mapping):
            error = chunk["error"]
            body = {
                "type": "error",
                "error": {"type": error.get("type") or "api_error", "message": error.get("message")},
            }
            return sse(body, "error")
        out: list[bytes] = []
        if not self._started:
            self._started = True
            message: dict[str, Any] = {
                "id": "msg_" + str(chunk.get("id") or "tollway"),
                "type": "message",
                "role": "assistant",
                "model": chunk.get("model"),
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
            out.append(sse({"type": "message_start", "message": message}, "message_start"))
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._open != "text":
                    out.append(self._start_block({"type": "text", "text": ""}, "text"))
                out.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or ():
                out.append(self._tool_delta(call))
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self._usage = from_openai_chat(usage)
        return b"".join(out)

    def _start_block(self, block: dict[str, Any], kind: str) -> bytes:
        out = self._stop_block()
        self._block += 1
        self._open = kind
        event = {"type": "content_block_start", "index": self._block, "content_block": block}
        return out + sse(event, "content_block_start")

    def _stop_block(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return sse({"type": "content_block_stop", "index": self._block}, "content_block_stop")

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        event = {"type": "content_block_delta", "index": self._block if index is None else index, "delta": delta}
        return sse(event, "content_block_delta")

    def _tool_delta(self, call: Any) -> bytes:
        if not isinstance(call, Mapping):
            return b""
        position = call.get("index", 0)
        function = call.get("function") or {}
        out = b""
        if position not in self._tools:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": {},
            }
            out += self._start_block(block, "tool")
            self._tools[position] = self._block
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out += self._delta({"type": "input_json_delta", "partial_json": arguments}, self._tools[position])
        return out

    def _close(self) -> bytes:
        self._stopped = True
        out = self._stop_block()
        usage = to_anthropic(self._usage) if self._usage is not None else {"output_tokens": 0}
        stop = FINISH_TO_STOP.get(self._finish or "stop", "end_turn")
        delta = {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage}
        return out + sse(delta, "message_delta") + sse({"type": "message_stop"}, "message_stop")

    def finish(self) -> bytes:
        if not self._stopped and self._finish is not None:
            return self._close()
        return b""


@dataclass
class AnthropicStreamTracker:
    """Watches an Anthropic Messages stream relayed to the client: usage, the end, what was streamed."""

    usage: TokenUsage | None = None
    done: bool = False
    content_chunks: int = 0
    content_chars: int = 0
    error: Mapping[str, Any] | None = None
    _usage: dict[str, Any] = field(default_factory=dict)

    def relay(self, event: bytes) -> bytes:
        data = sse_json(event)
        if data is None:
            return event
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            size = sum(
                len(v) for k, v in delta.items() if k in ("text", "partial_json", "thinking") and isinstance(v, str)
            )
            if size:
                self.content_chunks += 1
                self.content_chars += size
        elif kind == "message_start":
            merge_anthropic_usage(self._usage, (data.get("message") or {}).get("usage"))
        elif kind == "message_delta":
            merge_anthropic_usage(self._usage, data.get("usage"))
            self.usage = from_anthropic(self._usage)
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            self.error = data.get("error") or {}
        return event


def anthropic_stream_error(message: str) -> bytes:
    return sse({"type": "error", "error": {"type": "api_error", "message": message}}, "error")
