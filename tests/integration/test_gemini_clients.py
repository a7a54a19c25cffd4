"""The google-genai SDK uses Tollway as its base URL: generateContent and generateContentStream, to the simulator
and to a fake OpenAI upstream, metered to the token; keys as x-goog-api-key or ?key=; errors in Google's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from google import genai
from google.genai import errors, types

from tests.support.agent_app import KEY, tollway_app
from tests.support.fake_upstream import FakeOpenAI, Reply
from tests.support.in_process import InProcess
from tests.support.usage_events import request_events

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
NO_AUTO_CALLS = types.AutomaticFunctionCallingConfig(disable=True)


@asynccontextmanager
async def gemini_app(tmp_path: Path, fake_openai: FakeOpenAI) -> AsyncIterator[InProcess]:
    """Tollway with the simulator (demo) and a fake OpenAI upstream (gpt-4o); its events are stored on exit."""
    config: dict[str, Any] = {
        "providers": [
            {"name": "local", "type": "simulator", "tokens_per_second": 0},
            {"name": "up", "type": "openai", "base_url": fake_openai.base_url, "api_key": "sk-upstream"},
        ],
        "models": [
            {"name": "demo", "targets": [{"provider": "local", "model": "demo"}]},
            {"name": "gpt-4o", "targets": [{"provider": "up", "model": "gpt-4o-2024-08-06"}]},
        ],
        "consumers": [{"username": "acme-corp", "keys": [KEY]}],
    }
    async with tollway_app(tmp_path, config) as running:
        yield running


def sdk(http: Any, key: str = KEY, version: str | None = None) -> genai.Client:
    options = types.HttpOptions(base_url="http://tollway", httpx_async_client=http, api_version=version)
    return genai.Client(api_key=key, http_options=options)


def usage_of(metadata: types.GenerateContentResponseUsageMetadata | None) -> tuple[int, int]:
    assert metadata is not None
    return metadata.prompt_token_count or 0, (metadata.candidates_token_count or 0) + (
        metadata.thoughts_token_count or 0
    )


async def test_generate_content_and_stream_to_the_simulator(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    reported: list[tuple[int, int]] = []
    async with gemini_app(tmp_path, fake_openai) as app, app.http() as http:
        for version in (None, "v1beta"):  # the SDK's default (v1) and v1beta
            client = sdk(http, version=version)
            answer = await client.aio.models.generate_content(model="demo", contents="Hello, world!")
            assert (answer.text or "").startswith("Simulated reply from demo:")
            # the simulator's prompt: 3 priming + 3 per message + 4 tokens; its reply: 24 tokens
            assert usage_of(answer.usage_metadata) == (10, 24)
            reported.append(usage_of(answer.usage_metadata))
            counted = await client.aio.models.count_tokens(model="demo", contents="Hello, world!")
            assert counted.total_tokens == 10  # exact: what the simulator then reports (not metered)
        pieces: list[str] = []
        last = None
        async for chunk in await client.aio.models.generate_content_stream(model="demo", contents="Hello, world!"):
            pieces.append(chunk.text or "")
            last = chunk
        assert last is not None
        assert last.candidates is not None
        assert last.candidates[0].finish_reason == types.FinishReason.STOP
        assert "".join(pieces) == answer.text
        assert usage_of(last.usage_metadata) == (10, 24)
        reported.append(usage_of(last.usage_metadata))

        tool = types.Tool(function_declarations=[types.FunctionDeclaration(name="lookup", parameters_json_schema=CITY)])
        config = types.GenerateContentConfig(tools=[tool], automatic_function_calling=NO_AUTO_CALLS)
        called = await client.aio.models.generate_content(model="demo", contents="Please lookup Paris", config=config)
        assert called.function_calls is not None
        assert [(c.name, c.args) for c in called.function_calls] == [("lookup", {"city": "simulated"})]
        reported.append(usage_of(called.usage_metadata))
        # {"city":"simulated"} is 9 tokens, the name 1
        assert usage_of(called.usage_metadata)[1] == 10

        streamed = [
            c.function_calls
            async for c in await client.aio.models.generate_content_stream(
                model="demo", contents="Please lookup Paris", config=config
            )
            if c.function_calls
        ]
        assert [(c.name, c.args) for calls in streamed for c in calls] == [("lookup", {"city": "simulated"})]

        # the function's response goes back: the simulator answers in text
        turns = [
            types.Content(role="user", parts=[types.Part(text="Please lookup Paris")]),
            types.Content(role="model", parts=[types.Part(function_call=called.function_calls[0])]),
            types.Content(
                role="user",
                parts=[types.Part(function_response=types.FunctionResponse(name="lookup", response={"t": 21}))],
            ),
        ]
        after = await client.aio.models.generate_content(model="demo", contents=turns, config=config)
        assert after.function_calls is None
        assert (after.text or "").startswith("Simulated reply from demo:")

        structured = await client.aio.models.generate_content(
            model="demo",
            contents="Where?",
            config=types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=CITY),
        )
        assert orjson.loads(structured.text or "") == {"city": "simulated"}
    events = request_events(app.database)
    assert [(e["input_tokens"], e["output_tokens"]) for e in events[: len(reported)]] == reported
    assert len(events) == 7
    assert [e["route"] for e in events[:3]] == [
        "/v1/models/{model}:generateContent",
        "/v1beta/models/{model}:generateContent",
        "/v1beta/models/{model}:streamGenerateContent",
    ]
    assert all(e["status_code"] == 200 and not e["estimated"] for e in events)


async def test_to_a_fake_openai_upstream(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    # FakeOpenAI's default usage: 1200 prompt tokens (1024 cached), 300 completion (128 reasoning)
    async with gemini_app(tmp_path, fake_openai) as app, app.http() as http:
        client = sdk(http)
        answer = await client.aio.models.generate_content(
            model="gpt-4o",
            contents="Hi",
            config=types.GenerateContentConfig(system_instruction="Be brief", max_output_tokens=50, temperature=0.5),
        )
        assert answer.text == "Hello from the fake upstream."
        # no count upstream: the documented estimate, 3 + (3 + ceil(2 characters / 4)) = 7
        assert (await client.aio.models.count_tokens(model="gpt-4o", contents="Hi")).total_tokens == 7
        assert answer.usage_metadata is not None
        assert answer.usage_metadata.prompt_token_count == 1200
        assert answer.usage_metadata.cached_content_token_count == 1024
        assert answer.usage_metadata.candidates_token_count == 172
        assert answer.usage_metadata.thoughts_token_count == 128
        forwarded = fake_openai.received[-1].body
        assert forwarded["model"] == "gpt-4o-2024-08-06"
        assert forwarded["messages"] == [
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": "Hi"},
        ]
        assert forwarded["max_tokens"] == 50
        assert forwarded["temperature"] == 0.5

        fake_openai.enqueue(Reply(content="one two three"))
        text = [
            c.text
            async for c in await client.aio.models.generate_content_stream(model="gpt-4o", contents="Hi")
            if c.text
        ]
        assert "".join(text) == "one two three"
    events = request_events(app.database)
    for event in events:
        assert (event["input_tokens"], event["cache_read_tokens"]) == (176, 1024)
        assert (event["output_tokens"], event["reasoning_tokens"]) == (300, 128)
    assert [e["streamed"] for e in events] == [False, True]


async def test_keys_and_errors_in_googles_shape(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    async with gemini_app(tmp_path, fake_openai) as app, app.http() as http:
        answer = await http.post(f"/v1beta/models/demo:generateContent?alt=json&key={KEY}", json=body)
        assert answer.status_code == 200
        assert answer.json()["candidates"][0]["finishReason"] == "STOP"
        wrong = await http.post("/v1beta/models/demo:generateContent?key=guessed-key-123", json=body)
        assert wrong.status_code == 401
        assert wrong.json() == {
            "error": {"code": 401, "message": "Incorrect API key provided.", "status": "UNAUTHENTICATED"}
        }
        assert "guessed-key-123" not in wrong.text

        with pytest.raises(errors.ClientError) as missing:
            await sdk(http).aio.models.generate_content(model="nope", contents="Hi")
        assert missing.value.code == 404
        assert missing.value.status == "NOT_FOUND"

        bad = await http.post(
            "/v1beta/models/demo:generateContent", json={"contents": []}, headers={"x-goog-api-key": KEY}
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
        unknown = await http.post("/v1beta/models/demo:embedText", json=body, headers={"x-goog-api-key": KEY})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["status"] == "NOT_FOUND"
        listed = await http.get("/v1/models/demo", headers={"Authorization": f"Bearer {KEY}"})
        assert listed.status_code == 200  # GET under /v1/models/ is still the model list's
    assert [e["status_code"] for e in request_events(app.database)] == [200]
