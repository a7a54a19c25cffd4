"""Gemini-format client requests -> OpenAI chat, and chat answers -> Gemini (literal expectations)."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.errors import ValidationError
from tollway.gateway.translate.gemini_client import ChatToGemini, chat_to_gemini_response, gemini_to_chat_request


def test_a_tool_conversation_translates_to_chat() -> None:
    payload: dict[str, Any] = {
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {"role": "model", "parts": [{"function_call": {"name": "lookup", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {"t": 21}}}]},
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {"name": "lookup", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}},
        "generationConfig": {"maxOutputTokens": 64, "stopSequences": ["END"], "thinkingConfig": {"thinkingBudget": 0}},
    }
    assert gemini_to_chat_request(payload, "demo", True) == {
        "model": "demo",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": '{"t":21}'},
        ],
        "max_tokens": 64,
        "stop": ["END"],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"contents": []}, "contents"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role"),
        ({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]}, "tools[0]"),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2}}, None),
        ({"contents": [{"parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}, "contents[0].parts"),
        ({"contents": [{"parts": [{"text": "x"}]}], "cachedContentX": 1}, "cachedContentX"),
    ],
)
def test_bad_requests_are_validation_errors(payload: dict[str, Any], field: str | None) -> None:
    with pytest.raises(ValidationError) as caught:
        gemini_to_chat_request(payload, "demo", False)
    if field is not None:
        assert caught.value.field == field


def test_answers_translate_to_gemini() -> None:
    chat = {
        "id": "chatcmpl-1",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 4}},
    }
    assert chat_to_gemini_response(chat, "gpt-4o") == {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"functionCall": {"id": "c1", "name": "f", "args": {"a": 1}}}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "modelVersion": "gpt-4o",
        "responseId": "chatcmpl-1",
        "usageMetadata": {
            "promptTokenCount": 20,
            "candidatesTokenCount": 7,
            "totalTokenCount": 27,
            "cachedContentTokenCount": 4,
        },
    }


def test_a_stream_sends_text_as_it_comes_and_calls_whole_at_the_end() -> None:
    stream = ChatToGemini("demo")

    def event(body: str) -> bytes:
        return b"data: " + body.encode() + b"\n\n"

    assert stream.feed(event('{"id":"x","choices":[{"index":0,"delta":{"content":"Hi"}}]}')) == (
        b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Hi"}]},"index":0}],'
        b'"modelVersion":"demo","responseId":"x"}\n\n'
    )
    head = '{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":""}}'
    assert stream.feed(event('{"choices":[{"index":0,"delta":{"tool_calls":[' + head + "]}}]}")) == b""
    part = '{"index":0,"function":{"arguments":"{\\"a\\":1}"}}'
    assert stream.feed(event('{"choices":[{"index":0,"delta":{"tool_calls":[' + part + "]}}]}")) == b""
    assert stream.feed(event('{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}')) == b""
    assert stream.feed(event('{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3}}')) == b""
    assert stream.feed(b"data: [DONE]\n\n") == b""
    assert stream.finish() == (
        b'data: {"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"id":"c1","name":"f",'
        b'"args":{"a":1}}}]},"index":0,"finishReason":"STOP"}],"modelVersion":"demo","responseId":"x",'
        b'"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":3,"totalTokenCount":8}}\n\n'
    )
