from __future__ import annotations

import orjson

from tollway.gateway.streaming import ChatStreamTracker, SSEFramer, event_data
from tollway.metering.llm import TokenUsage


def chunk(content: str | None = None, usage: object = "absent", choices: bool = True) -> bytes:
    body: dict[str, object] = {"id": "c", "object": "chat.completion.chunk", "model": "m"}
    body["choices"] = [{"index": 0, "delta": {"content": content}, "finish_reason": None}] if choices else []
    if usage != "absent":
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


def test_framer_handles_arbitrary_splits_and_crlf() -> None:
    stream = chunk("a") + b"data: x\r\n\r\n" + chunk("b") + b"data: [DONE]\n\n"
    for size in (1, 2, 7, 50, len(stream)):
        framer = SSEFramer()
        events: list[bytes] = []
        for i in range(0, len(stream), size):
            events.extend(framer.feed(stream[i : i + size]))
        assert b"".join(events) == stream
        assert len(events) == 4
        assert framer.rest() == b""


def test_framer_keeps_a_cut_event() -> None:
    framer = SSEFramer()
    assert framer.feed(b'data: {"a"') == []
    assert framer.rest() == b'data: {"a"'


def test_event_data_joins_lines() -> None:
    assert event_data(b"event: x\ndata: a\ndata:b\n\n") == b"a\nb"
    assert event_data(b": comment\n\n") is None


def test_usage_chunk_hidden_when_client_did_not_ask() -> None:
    tracker = ChatStreamTracker(client_wants_usage=False)
    assert tracker.relay(chunk("Hel", usage=None)) == chunk("Hel", usage=None)
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}
    assert tracker.relay(chunk(usage=usage, choices=False)) == b""
    assert tracker.relay(b"data: [DONE]\n\n") == b"data: [DONE]\n\n"
    assert tracker.usage == TokenUsage(input=6, output=2, cache_read=4)
    assert tracker.done
    assert tracker.content_chunks == 1
    assert tracker.content_chars == 3


def test_usage_chunk_passed_when_client_asked() -> None:
    tracker = ChatStreamTracker(client_wants_usage=True)
    event = chunk(usage={"prompt_tokens": 1, "completion_tokens": 1}, choices=False)
    assert tracker.relay(event) == event
    assert tracker.usage == TokenUsage(input=1, output=1)


def test_usage_on_a_chunk_with_choices_is_stripped_not_dropped() -> None:
    tracker = ChatStreamTracker(client_wants_usage=False)
    out = tracker.relay(chunk("end", usage={"prompt_tokens": 3, "completion_tokens": 4}))
    parsed = orjson.loads(event_data(out) or b"")
    assert "usage" not in parsed
    assert parsed["choices"][0]["delta"]["content"] == "end"
    assert tracker.usage == TokenUsage(input=3, output=4)


def test_error_event_is_noted_and_passed() -> None:
    tracker = ChatStreamTracker(client_wants_usage=False)
    event = b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n'
    assert tracker.relay(event) == event
    assert tracker.error == {"message": "boom", "type": "server_error"}
