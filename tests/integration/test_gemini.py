"""Gemini models through Tollway: the openai SDK (chat, translated) and the anthropic SDK (two translations)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.support.fake_gemini import GEMINI_TOKENS, FakeGemini, GeminiReply
from tests.support.net import wait_until
from tests.support.scenario import KEY, Consumer
from tests.support.sharing import fresh_fake
from tests.support.tollway_process import TollwayProcess
from tests.support.usage_events import request_events


@pytest.fixture(scope="module")
def tollway(tmp_path_factory: pytest.TempPathFactory, shared_gemini: FakeGemini) -> Iterator[TollwayProcess]:
    """One gateway for the module's tests (tests/support/sharing.py)."""
    config: dict[str, Any] = {
        "providers": [
            {"name": "google", "type": "gemini", "base_url": shared_gemini.base_url, "api_key": "AIza-upstream"}
        ],
        "models": [{"name": "gemini-flash", "targets": [{"provider": "google", "model": "gemini-2.5-flash"}]}],
        "consumers": [{"username": "acme-corp", "keys": [KEY]}],
    }
    process = TollwayProcess(tmp_path_factory.mktemp("gemini"), config).start()
    yield process
    process.stop()


fake_gemini = fresh_fake("fake_gemini", "shared_gemini")


def test_openai_chat_to_gemini(
    tollway: TollwayProcess, fake_gemini: FakeGemini, oai: openai.OpenAI, consumer: Consumer
) -> None:
    completion = oai.chat.completions.create(
        model="gemini-flash",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        max_tokens=100,
        temperature=1.5,
        stop=["END"],
    )
    assert completion.choices[0].message.content == "Hello from Gemini."
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 1800
    assert completion.usage.completion_tokens == 340
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 90
    sent = fake_gemini.received[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == "AIza-upstream"
    assert consumer.key not in str(sent.headers)
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 100, "temperature": 1.5, "stopSequences": ["END"]},
    }
    tollway.expect_tokens(GEMINI_TOKENS, consumer.subject)


def test_openai_chat_streams_from_gemini(
    tollway: TollwayProcess, fake_gemini: FakeGemini, oai: openai.OpenAI, consumer: Consumer
) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="gemini-flash",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from Gemini."
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 2140
    assert fake_gemini.received[-1].path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert fake_gemini.received[-1].query == {"alt": "sse"}
    # Each event repeats usageMetadata; the last one counts, once.
    tollway.expect_tokens(GEMINI_TOKENS, consumer.subject)


def test_gemini_function_calls_round_trip(fake_gemini: FakeGemini, oai: openai.OpenAI) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
            },
        }
    ]
    fake_gemini.enqueue(GeminiReply(text="", function_call={"name": "get_weather", "args": {"location": "Paris"}}))
    first = oai.chat.completions.create(
        model="gemini-flash", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=tools, stream=True
    )
    calls = [c.choices[0].delta.tool_calls for c in first if c.choices and c.choices[0].delta.tool_calls]
    assert len(calls) == 1
    call = calls[0][0]
    assert call.function is not None
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"location":"Paris"}')
    assert fake_gemini.received[-1].body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Get the weather",
                    "parametersJsonSchema": tools[0]["function"]["parameters"],
                }
            ]
        }
    ]
    history: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"forecast": "sunny"}'},
    ]
    oai.chat.completions.create(model="gemini-flash", messages=history, tools=tools)
    assert fake_gemini.received[-1].body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"forecast": "sunny"}}}]},
    ]


def test_anthropic_sdk_to_gemini(tollway: TollwayProcess, consumer: Consumer) -> None:
    with anthropic.Anthropic(base_url=tollway.base_url, api_key=consumer.key, max_retries=0) as client:
        message = client.messages.create(
            model="gemini-flash", max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
        )
        with client.messages.stream(
            model="gemini-flash", max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from Gemini." == text
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (
        776,
        1024,
        340,
    )
    tollway.expect_tokens({k: v * 2 for k, v in GEMINI_TOKENS.items()}, consumer.subject)


def test_gemini_errors_and_untranslatable_fields(fake_gemini: FakeGemini, oai: openai.OpenAI) -> None:
    exhausted = {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}
    fake_gemini.enqueue(GeminiReply(status=429, body=exhausted))
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="gemini-flash", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body == {
        "message": "Resource has been exhausted",
        "type": "rate_limit_error",
        "param": None,
        "code": "upstream_error",
    }
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(
            model="gemini-flash",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}],
        )
    assert bad.value.param == "messages[0].content[0]"
    assert len(fake_gemini.received) == 1


def test_cut_gemini_stream_is_partial(
    tollway: TollwayProcess, fake_gemini: FakeGemini, oai: openai.OpenAI, consumer: Consumer
) -> None:
    fake_gemini.enqueue(GeminiReply(text="one two three four five", cut_after=2))
    with pytest.raises(openai.APIError):
        for _ in oai.chat.completions.create(
            model="gemini-flash", messages=[{"role": "user", "content": "Count"}], stream=True
        ):
            pass
    wait_until(lambda: len(request_events(tollway.workdir / "tollway.db", consumer.subject)) == 1)
    event = request_events(tollway.workdir / "tollway.db", consumer.subject)[0]
    assert (event["partial"], event["estimated"], event["provider"]) == (True, True, "google")
