"""OpenAI chat -> Gemini, and Responses <-> chat translation (pure)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.errors import ValidationError
from tollway.gateway.streaming import SSEFramer, event_data
from tollway.gateway.translate.gemini import GeminiToChat, chat_to_gemini_request, gemini_to_chat_response
from tollway.gateway.translate.responses import (
    ChatToResponses,
    ResponsesStreamTracker,
    chat_to_responses_response,
    responses_to_chat_request,
)
from tollway.metering.llm import TokenUsage

USAGE = {"promptTokenCount": 50, "candidatesTokenCount": 8, "cachedContentTokenCount": 10, "thoughtsTokenCount": 4}


def parse(out: bytes) -> list[dict[str, Any]]:
    parsed = []
    for event in SSEFramer().feed(out):
        data = event_data(event)
        assert data is not None
        parsed.append({"DONE": True} if data == b"[DONE]" else orjson.loads(data))
    return parsed


def test_chat_to_gemini_request() -> None:
    payload = {
        "model": "gemini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA="}}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "look", "arguments": '{"q":1}'}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "plain text"},
        ],
        "max_tokens": 10,
        "top_p": 0.5,
        "seed": 7,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
    }
    assert chat_to_gemini_request(payload) == {
        "contents": [
            {"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "AAA="}}]},
            {"role": "model", "parts": [{"functionCall": {"name": "look", "args": {"q": 1}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "look", "response": {"content": "plain text"}}}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "maxOutputTokens": 10,
            "topP": 0.5,
            "seed": 7,
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object"},
        },
        "tools": [{"functionDeclarations": [{"name": "look", "parametersJsonSchema": {"type": "object"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["look"]}},
    }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"user": "u-1"}, "user"),
        ({"logit_bias": {}}, "logit_bias"),
        ({"n": 3}, "n"),
        ({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}, "messages[0].tool_call_id"),
    ],
)
def test_untranslatable_chat_fields_for_gemini(fields: dict[str, Any], param: str) -> None:
    payload = {"model": "gemini", "messages": [{"role": "user", "content": "Hi"}], **fields}
    with pytest.raises(ValidationError) as caught:
        chat_to_gemini_request(payload)
    assert caught.value.field == param


def test_gemini_response_to_chat() -> None:
    body = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "hmm", "thought": True}, {"text": "Hi"}]},
                "finishReason": "MAX_TOKENS",
            }
        ],
        "usageMetadata": USAGE,
        "responseId": "abc",
    }
    completion = gemini_to_chat_response(body, model="gemini", created=1)
    assert completion["choices"][0]["message"]["content"] == "Hi"
    assert completion["choices"][0]["message"]["reasoning_content"] == "hmm"
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"]["prompt_tokens"] == 50
    assert completion["usage"]["completion_tokens"] == 12


def gemini_event(parts: list[dict[str, Any]], finish: str | None, usage: dict[str, Any]) -> bytes:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if finish:
        candidate["finishReason"] = finish
    return b"data: " + orjson.dumps({"candidates": [candidate], "usageMetadata": usage}) + b"\r\n\r\n"


def test_gemini_stream_ends_only_after_a_finish_reason() -> None:
    first = gemini_event([{"text": "Hel"}], None, {**USAGE, "candidatesTokenCount": 2})
    last = gemini_event([{"functionCall": {"name": "look", "args": {}}}], "STOP", USAGE)
    translator = GeminiToChat(model="g", include_usage=True, created=0)
    out = parse(b"".join(translator.feed(e) for e in SSEFramer().feed(first + last)) + translator.finish())
    assert out[-1] == {"DONE": True}
    assert out[-2]["usage"]["completion_tokens"] == 12  # the last usageMetadata, once
    assert out[-3]["choices"][0]["finish_reason"] == "tool_calls"
    cut = GeminiToChat(model="g", include_usage=True, created=0)
    partial = parse(b"".join(cut.feed(e) for e in SSEFramer().feed(first)) + cut.finish())
    assert {"DONE": True} not in partial


def test_responses_request_to_chat() -> None:
    payload = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Hi"},
                    {"type": "input_image", "image_url": "https://x/a.png"},
                ],
            },
            {"type": "function_call", "call_id": "c1", "name": "look", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "done"},
        ],
        "max_output_tokens": 20,
        "tools": [{"type": "function", "name": "look", "parameters": {"type": "object"}, "strict": True}],
        "tool_choice": {"type": "function", "name": "look"},
        "store": False,
        "stream": True,
    }
    assert responses_to_chat_request(payload) == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hi"},
                    {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ],
        "max_completion_tokens": 20,
        "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}, "strict": True}}],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"reasoning": {"effort": "high", "summary": "auto"}}, "reasoning"),  # the endpoint drops summaries first
        ({"reasoning": {"effort": "extreme"}}, "reasoning"),
        ({"tools": [{"type": "file_search"}]}, "tools[0]"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input[0]"),
    ],
)
def test_untranslatable_responses_fields(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(ValidationError) as caught:
        responses_to_chat_request({"model": "m", "input": "Hi", **fields})
    assert caught.value.field == param


def test_a_reasoning_effort_becomes_chats_reasoning_effort() -> None:
    request = {"model": "m", "input": "Hi", "reasoning": {"effort": "low"}, "tool_choice": "auto"}
    assert responses_to_chat_request(request) == {
        "model": "m",
        "messages": [{"role": "user", "content": "Hi"}],
        "reasoning_effort": "low",
    }  # and tool_choice auto without tools (all of them dropped, say) is left out: chat refuses it
    assert "reasoning_effort" not in responses_to_chat_request({"model": "m", "input": "Hi", "reasoning": None})


def test_chat_completion_to_response() -> None:
    completion = {
        "id": "chatcmpl-9",
        "model": "m",
        "created": 3,
        "choices": [{"message": {"content": "Hi", "tool_calls": []}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}},
    }
    response = chat_to_responses_response(completion)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["content"][0]["text"] == "Hi"
    assert response["usage"]["input_tokens"] == 10
    assert response["usage"]["input_tokens_details"] == {"cached_tokens": 4}


def chat_chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> bytes:
    body: dict[str, Any] = {"id": "chatcmpl-1", "model": "m", "choices": []}
    if delta is not None:
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    if usage is not None:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


def test_chat_stream_to_responses_events_and_tracker() -> None:
    stream = [
        chat_chunk({"role": "assistant", "content": ""}),
        chat_chunk({"content": "Hi"}),
        chat_chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "look", "arguments": "{}"}}]}),
        chat_chunk({}, "tool_calls"),
        chat_chunk(None, usage={"prompt_tokens": 10, "completion_tokens": 3}),
        b"data: [DONE]\n\n",
    ]
    translator = ChatToResponses(created=1)
    raw = b"".join(translator.feed(e) for e in stream) + translator.finish()
    out = parse(raw)
    assert [e["type"] for e in out] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    final = out[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["usage"]["total_tokens"] == 13
    tracker = ResponsesStreamTracker()
    for event in SSEFramer().feed(raw):
        tracker.relay(event)
    assert tracker.done
    assert tracker.usage == TokenUsage(input=10, output=3)


def test_gemini_thought_signatures_round_trip_in_the_tool_call_id() -> None:
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"functionCall": {"name": "look", "args": {"q": 1}}, "thoughtSignature": "CiQB0e2Kb"}],
                },
                "finishReason": "STOP",
            }
        ]
    }
    call = gemini_to_chat_response(body, model="g", created=0)["choices"][0]["message"]["tool_calls"][0]
    history = [
        {"role": "user", "content": "Look"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"seen": true}'},
    ]
    contents = chat_to_gemini_request({"model": "g", "messages": history})["contents"]
    assert contents[1]["parts"] == [
        {"functionCall": {"name": "look", "args": {"q": 1}}, "thoughtSignature": "CiQB0e2Kb"}
    ]
    assert contents[2]["parts"] == [{"functionResponse": {"name": "look", "response": {"seen": True}}}]
