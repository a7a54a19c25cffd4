"""Incremental Server-Sent Events framing and the OpenAI chat stream usage tracker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from tollway.gateway.decode import json_object
from tollway.gateway.usage import from_openai_chat
from tollway.metering.llm import TokenUsage

_EVENT_END = (b"\n\n", b"\r\n\r\n")


class SSEFramer:
    """Splits a byte stream into complete SSE events (each returned with its trailing blank line)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._buffer + chunk if self._buffer else chunk
        events: list[bytes] = []
        start = 0
        while True:
            end, sep = _find_event_end(data, start)
            if end < 0:
                break
            events.append(data[start : end + sep])
            start = end + sep
        self._buffer = data[start:]
        return events

    def rest(self) -> bytes:
        """Bytes received after the last complete event (a stream cut mid-event)."""
        return self._buffer


def _find_event_end(data: bytes, start: int) -> tuple[int, int]:
    best, size = -1, 0
    for sep in _EVENT_END:
        index = data.find(sep, start)
        if index >= 0 and (best < 0 or index < best):
            best, size = index, len(sep)
    return best, size


def event_data(event: bytes) -> bytes | None:
    """The joined `data:` lines of one SSE event, or None when it has none."""
    parts: list[bytes] = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(parts) if parts else None


class StreamTracker(Protocol):
    """What the stream relay needs from a watcher of one API format's stream."""

    usage: TokenUsage | None
    done: bool
    content_chunks: int
    content_chars: int
    error: Mapping[str, Any] | None

    def relay(self, event: bytes) -> bytes: ...


@dataclass
class ChatStreamTracker:
    """Watches an OpenAI chat completion stream: finds usage, the end marker, and what was streamed.

    `relay(event)` returns the bytes to pass to the client for one event: the event itself, or
    nothing / a rewritten event when it is a usage chunk the client did not ask for.
    """

    client_wants_usage: bool
    usage: TokenUsage | None = None
    raw_usage: Mapping[str, Any] | None = None
    done: bool = False
    content_chunks: int = 0
    content_chars: int = 0
    error: Mapping[str, Any] | None = None

    def relay(self, event: bytes) -> bytes:
        data = event_data(event)
        if data is None:
            return event
        if data == b"[DONE]":
            self.done = True
            return event
        chunk = json_object(data)
        if chunk is None:
            return event
        if isinstance(chunk.get("error"), Mapping):
            self.error = chunk["error"]
            return event
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            text = choice.get("text") if isinstance(choice, dict) else None  # legacy completions
            size = _delta_size(delta) if isinstance(delta, dict) else len(text) if isinstance(text, str) else 0
            if size:
                self.content_chunks += 1
                self.content_chars += size
        usage = chunk.get("usage")
        if not isinstance(usage, Mapping):
            return event
        self.raw_usage = usage
        self.usage = from_openai_chat(usage)
        if self.client_wants_usage:
            return event
        if not chunk.get("choices"):
            return b""
        del chunk["usage"]
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _delta_size(delta: Mapping[str, Any]) -> int:
    size = 0
    for key in ("content", "refusal", "reasoning_content"):
        value = delta.get(key)
        if isinstance(value, str):
            size += len(value)
    for call in delta.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            size += len(function.get("arguments") or "") + len(function.get("name") or "")
    return size
