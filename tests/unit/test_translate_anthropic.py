"""OpenAI chat <-> Anthropic Messages translation: requests, responses, streams, and what gets a 400."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.error_shapes import status_of
from tollway.errors import ValidationError
from tollway.gateway.streaming import SSEFramer, event_data
from tollway.gateway.translate.anthropic import (
    DEFAULT_MAX_TOKENS,
    anthropic_to_chat_response,
    chat_to_anthropic_request,
)
from tollway.gateway.translate.anthropic_client import anthropic_to_chat_request, chat_to_anthropic_response
from tollway.gateway.translate.anthropic_stream import AnthropicStreamTracker, AnthropicToChat, ChatToAnthropic
from tollway.metering.llm import TokenUsage

PNG = "iVBORw0KGgo="


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "claude", "messages": [{"role": "user", "content": "Hi"}], **fields}


def test_chat_request_to_anthropic_carries_every_supported_field() -> None:
    payload = chat(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"q": 1}'}},
                    {"id": "call_2", "type": "function", "function": {"name": "look", "arguments": '{"q": 2}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "a hat"}]},
            {"role": "user", "content": "Thanks"},
        ],
        max_completion_tokens=300,
        temperature=0.2,
        top_p=0.9,
        stop="END",
        stream=True,
        stream_options={"include_usage": True},
        user="u-1",
        tools=[
            {"type": "function", "function": {"name": "look", "description": "Look", "parameters": {"type": "object"}}}
        ],
        tool_choice="required",
        parallel_tool_calls=False,
        n=1,
    )
    assert chat_to_anthropic_request(payload) == {
        "model": "claude",
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use metric."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "look", "input": {"q": 1}},
                    {"type": "tool_use", "id": "call_2", "name": "look", "input": {"q": 2}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "a cat"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "a hat"}]},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "max_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "stream": True,
        "metadata": {"user_id": "u-1"},
        "tools": [{"name": "look", "input_schema": {"type": "object"}, "description": "Look"}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }


def test_chat_request_without_max_tokens_gets_the_default() -> None:
    assert chat_to_anthropic_request(chat())["max_tokens"] == DEFAULT_MAX_TOKENS


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"n": 2}, "n"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"temperature": 1.5}, "temperature"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "late"}]}, "messages[1]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "user", "content": "a", "name": "bob"}]}, "messages[0].name"),
        ({"messages": [{"role": "function", "content": "a"}]}, "messages[0].role"),
    ],
)
def test_untranslatable_chat_fields_get_a_400_naming_them(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(ValidationError) as caught:
        chat_to_anthropic_request(chat(**fields))
    assert status_of(caught.value.kind) == 400
    assert caught.value.field == param
    assert param.split("[")[0] in caught.value.message


def test_anthropic_request_to_chat() -> None:
    payload = {
        "model": "gpt",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "stop_sequences": ["END"],
        "temperature": 0.3,
        "stream": True,
        "metadata": {"user_id": "u-1"},
        "tools": [{"name": "look", "description": "Look", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "look", "disable_parallel_tool_use": True},
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}],
            },
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": 1}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "boom", "is_error": True},
                    {"type": "text", "text": "And now?"},
                ],
            },
        ],
    }
    assert anthropic_to_chat_request(payload) == {
        "model": "gpt",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "look", "arguments": '{"q":1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: boom"},
            {"role": "user", "content": "And now?"},
        ],
        "max_completion_tokens": 100,
        "temperature": 0.3,
        "stop": ["END"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-1",
        "tools": [
            {"type": "function", "function": {"name": "look", "parameters": {"type": "object"}, "description": "Look"}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "parallel_tool_calls": False,
    }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"top_k": 5}, "top_k"),
        ({"thinking": {"type": "adaptive"}}, "thinking"),  # the messages endpoint drops it first (lenient)
        ({"context_management": {"edits": [{"type": "clear_thinking_20251015"}]}}, "context_management"),
        ({"output_config": {"format": {"type": "json_schema"}}}, "output_config"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, "messages[0].content[0]"),
        ({"metadata": {"tenant": "x"}}, "metadata.tenant"),
    ],
)
def test_untranslatable_anthropic_fields_get_a_400_naming_them(fields: dict[str, Any], param: str) -> None:
    payload = {"model": "gpt", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}], **fields}
    with pytest.raises(ValidationError) as caught:
        anthropic_to_chat_request(payload)
    assert caught.value.field == param


def test_responses_both_ways() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": 1}},
        ],
        "stop_reason": "tool_use",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 3,
            "cache_creation_input_tokens": 2,
        },
    }
    completion = anthropic_to_chat_response(message)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me look."
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "look", "arguments": '{"q":1}'}
    assert completion["usage"]["prompt_tokens"] == 15
    assert completion["usage"]["cache_creation_input_tokens"] == 2
    back = chat_to_anthropic_response(completion)
    assert back["content"] == message["content"]
    assert back["stop_reason"] == "tool_use"
    assert back["usage"] == {k: message["usage"][k] for k in back["usage"]}  # type: ignore[index]


def events(translator: Any, raw: list[bytes]) -> list[dict[str, Any]]:
    framer = SSEFramer()
    out = b"".join(translator.feed(e) for chunk in raw for e in framer.feed(chunk)) + translator.finish()
    parsed = []
    for event in SSEFramer().feed(out):
        data = event_data(event)
        assert data is not None
        parsed.append({"DONE": True} if data == b"[DONE]" else orjson.loads(data))
    return parsed


def sse(data: dict[str, Any]) -> bytes:
    kind: str = data["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


# The documented example stream (docs.anthropic.com, "Streaming Messages": basic and tool use).
ANTHROPIC_STREAM = [
    sse(
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 25, "cache_read_input_tokens": 7, "output_tokens": 1},
            },
        }
    ),
    sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    sse({"type": "ping"}),
    sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
    sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}),
    sse({"type": "content_block_stop", "index": 0}),
    sse(
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
        }
    ),
    sse({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
    sse(
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"location": "San Fra'},
        }
    ),
    sse({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": 'ncisco"}'}}),
    sse({"type": "content_block_stop", "index": 1}),
    sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 10},
        }
    ),
    sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 15},
        }
    ),
    sse({"type": "message_stop"}),
]


def test_anthropic_stream_to_chat_chunks() -> None:
    out = events(AnthropicToChat(include_usage=True, created=5), ANTHROPIC_STREAM)
    assert out[-1] == {"DONE": True}
    usage = out[-2]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (32, 15)  # cumulative: last, never summed
    deltas = [c["choices"][0]["delta"] for c in out[:-2]]
    assert "".join(d.get("content") or "" for d in deltas) == "Hello!"
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0]["id"] == "toolu_1"
    assert "".join(c["function"]["arguments"] for c in calls) == '{"location": "San Francisco"}'
    assert [c["choices"][0]["finish_reason"] for c in out[:-2] if c["choices"][0]["finish_reason"]] == [
        "tool_calls",
        "tool_calls",
    ]


def test_anthropic_tracker_keeps_the_last_cumulative_usage() -> None:
    tracker = AnthropicStreamTracker()
    for event in ANTHROPIC_STREAM:
        assert tracker.relay(event) == event
    assert tracker.done
    assert tracker.usage == TokenUsage(input=25, output=15, cache_read=7)


def test_anthropic_tracker_without_message_delta_has_no_usage() -> None:
    tracker = AnthropicStreamTracker()
    for event in ANTHROPIC_STREAM[:5]:
        tracker.relay(event)
    assert tracker.usage is None
    assert not tracker.done
    assert tracker.content_chunks == 2


def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt", "choices": []}
    if delta is not None:
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    if usage is not None:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


CHAT_STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Let me"}),
    chunk({"content": " check."}),
    chunk(
        {
            "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "look", "arguments": ""}}
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
    chunk({}, "tool_calls"),
    chunk(None, usage={"prompt_tokens": 20, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 4}}),
    b"data: [DONE]\n\n",
]


def test_chat_stream_to_anthropic_events() -> None:
    out = events(ChatToAnthropic(), CHAT_STREAM)
    assert [e["type"] for e in out] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert out[5]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "look", "input": {}}
    assert out[9]["delta"]["stop_reason"] == "tool_use"
    assert out[9]["usage"] == {
        "input_tokens": 16,
        "output_tokens": 9,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 4,
    }
    tracker = AnthropicStreamTracker()
    translator = ChatToAnthropic()
    for event in SSEFramer().feed(b"".join(translator.feed(e) for e in CHAT_STREAM)):
        tracker.relay(event)
    assert tracker.usage == TokenUsage(input=16, output=9, cache_read=4)


def test_chat_stream_cut_before_done_does_not_end_the_message() -> None:
    out = events(ChatToAnthropic(), CHAT_STREAM[:3])
    assert out[-1]["type"] == "content_block_delta"
