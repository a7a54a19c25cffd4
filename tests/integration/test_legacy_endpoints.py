"""OpenAI's legacy `POST /v1/completions` (the openai SDK's `completions.create`, LangChain's `OpenAI` LLM, LlamaIndex's
`OpenAILike` by default) and Gemini's `:embedContent` / `:batchEmbedContents` (the google-genai SDK's
`embed_content`): native where the target serves them, translated where it does not, metered as reported.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types
from langchain_openai import OpenAI as LangChainOpenAI

from tests.support.agent_app import KEY, tollway_app
from tests.support.fake_upstream import DEFAULT_USAGE, FakeOpenAI
from tests.support.in_process import InProcess
from tests.support.usage_events import request_events

# FakeOpenAI's default usage: 1200 prompt tokens (1024 cached), 300 completion.
FAKE_TOKENS = (176, 1024, 300)


@asynccontextmanager
async def app(tmp_path: Path, fake_openai: FakeOpenAI) -> AsyncIterator[InProcess]:
    """The simulator (demo), an OpenAI-compatible server with /completions (native) and one that serves only
    chat (chat-only); events are stored on exit."""
    config: dict[str, Any] = {
        "providers": [
            {"name": "local", "type": "simulator", "tokens_per_second": 0},
            {"name": "vllm", "type": "openai", "base_url": fake_openai.base_url, "api_key": "sk-upstream"},
            {
                "name": "chat-only",
                "type": "openai",
                "base_url": fake_openai.base_url,
                "api_key": "sk-upstream",
                "endpoints": ["chat/completions"],
            },
        ],
        "models": [
            {"name": "demo", "targets": [{"provider": "local", "model": "demo"}]},
            {"name": "native", "targets": [{"provider": "vllm", "model": "Qwen2.5-7B"}]},
            {"name": "translated", "targets": [{"provider": "chat-only", "model": "llama-3.1-8b"}]},
        ],
        "consumers": [{"username": "acme-corp", "keys": [KEY]}],
    }
    async with tollway_app(tmp_path, config) as running:
        yield running


def metered(event: dict[str, Any]) -> tuple[int, int, int]:
    return event["input_tokens"], event["cache_read_tokens"], event["output_tokens"]


def openai_client(http: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=KEY, base_url="http://tollway/v1", http_client=http, max_retries=0)


async def test_completions_on_the_simulator_translated_to_chat(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with app(tmp_path, fake_openai) as running, running.http2() as http, openai_client(http) as client:
        done = await client.completions.create(model="demo", prompt="Say this is a test", max_tokens=7)
        assert done.object == "text_completion"
        assert done.choices[0].text == "Simulated reply from demo: streaming streaming"  # 7 tokens, cut
        assert done.choices[0].finish_reason == "length"
        assert done.usage is not None
        # 3 priming + 3 for the message + 5 words: the simulator counts the prompt as one user message
        assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (11, 7)
        pieces: list[str] = []
        usage = None
        stream = await client.completions.create(
            model="demo", prompt=["Say this is a test"], stream=True, stream_options={"include_usage": True}
        )
        async for chunk in stream:
            pieces.extend(choice.text for choice in chunk.choices)
            usage = chunk.usage or usage
        assert "".join(pieces).startswith("Simulated reply from demo:")
        assert usage is not None
        assert (usage.prompt_tokens, usage.completion_tokens) == (11, 24)
        with pytest.raises(openai.BadRequestError) as several:
            await client.completions.create(model="demo", prompt=["one", "two"])
        assert several.value.param == "prompt"
        assert "several prompts" in several.value.message
        with pytest.raises(openai.BadRequestError) as echo:
            await client.completions.create(model="demo", prompt="x", echo=True)
        assert echo.value.param == "echo"
    events = request_events(running.database)
    assert [(e["route"], e["streamed"]) for e in events] == [("/v1/completions", False), ("/v1/completions", True)]
    assert [metered(e) for e in events] == [(11, 0, 7), (11, 0, 24)]


async def test_completions_native_and_on_a_chat_only_server(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with app(tmp_path, fake_openai) as running, running.http2() as http, openai_client(http) as client:
        native = await client.completions.create(model="native", prompt=["a", "b"], max_tokens=5)
        sent = fake_openai.received[-1]
        assert (sent.path, sent.body) == (
            "/v1/completions",
            {"model": "Qwen2.5-7B", "prompt": ["a", "b"], "max_tokens": 5},
        )
        assert [c.text for c in native.choices] == ["Hello from the fake upstream."] * 2
        pieces = [
            c.choices[0].text
            async for c in await client.completions.create(model="native", prompt="a", stream=True)
            if c.choices
        ]
        assert "".join(pieces).strip() == "Hello from the fake upstream."
        assert fake_openai.received[-1].body["stream_options"] == {
            "include_usage": True
        }  # asked on the client's behalf

        translated = await client.completions.create(
            model="translated", prompt="Once upon", temperature=0.5, stop=["\n"]
        )
        sent = fake_openai.received[-1]
        assert sent.path == "/v1/chat/completions"
        assert sent.body == {
            "model": "llama-3.1-8b",
            "messages": [{"role": "user", "content": "Once upon"}],
            "temperature": 0.5,
            "stop": ["\n"],
        }
        assert translated.id == "cmpl-fake123"
        assert translated.choices[0].text == "Hello from the fake upstream."
        assert translated.usage is not None
        assert translated.usage.prompt_tokens == DEFAULT_USAGE["prompt_tokens"]
        streamed = [c async for c in await client.completions.create(model="translated", prompt="Once", stream=True)]
        assert "".join(c.choices[0].text for c in streamed if c.choices) == "Hello from the fake upstream."
        assert all(c.usage is None for c in streamed)  # the usage chunk the client did not ask for is not relayed
    events = request_events(running.database)
    assert [metered(e) for e in events] == [FAKE_TOKENS] * 4


async def test_langchains_completion_llm(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    """LangChain's `OpenAI` LLM (and LlamaIndex's `OpenAILike` with is_chat_model=False) post a prompt list."""
    async with app(tmp_path, fake_openai) as running, running.http2() as http:
        llm = LangChainOpenAI(
            model="demo", api_key=KEY, base_url="http://tollway/v1", http_async_client=http, max_retries=0
        )
        answer = await llm.ainvoke("Hello")
        assert answer.startswith("Simulated reply from demo:")
    assert [e["route"] for e in request_events(running.database)] == ["/v1/completions"]


async def test_gemini_embed_content_with_the_google_genai_sdk(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with app(tmp_path, fake_openai) as running, running.http() as http:
        client = genai.Client(
            api_key=KEY, http_options=types.HttpOptions(base_url="http://tollway", httpx_async_client=http)
        )
        one = await client.aio.models.embed_content(model="demo", contents="Hello, world!")
        assert one.embeddings is not None
        assert len(one.embeddings) == 1
        assert one.embeddings[0].values is not None
        assert len(one.embeddings[0].values) > 0
        many = await client.aio.models.embed_content(
            model="native",
            contents=[
                types.Content(parts=[types.Part(text="first text")]),
                types.Content(parts=[types.Part(text="second text")]),
            ],
            config=types.EmbedContentConfig(task_type="RETRIEVAL_DOCUMENT", output_dimensionality=3),
        )
        assert many.embeddings is not None
        assert [e.values for e in many.embeddings] == [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]]
        sent = fake_openai.received[-1]
        assert (sent.path, sent.body) == (
            "/v1/embeddings",
            {"model": "Qwen2.5-7B", "input": ["first text", "second text"], "dimensions": 3},
        )
        # :embedContent (one content, the older SDKs' and curl's call), on v1beta
        single = await http.post(
            "/v1beta/models/native:embedContent",
            json={"content": {"parts": [{"text": "a"}, {"text": "b"}]}},
            headers={"x-goog-api-key": KEY},
        )
        assert single.status_code == 200
        assert single.json() == {
            "embedding": {"values": [0.1, 0.2, 0.3]},
            "usageMetadata": {"promptTokenCount": 1200, "totalTokenCount": 1200},
        }
        assert fake_openai.received[-1].body["input"] == ["a\nb"]
        with pytest.raises(errors.ClientError) as not_text:
            await client.aio.models.embed_content(
                model="demo",
                contents=types.Content(parts=[types.Part(inline_data=types.Blob(data=b"x", mime_type="image/png"))]),
            )
        assert not_text.value.code == 400
    events = request_events(running.database)
    assert [e["route"] for e in events] == [
        "/v1/models/{model}:batchEmbedContents",
        "/v1/models/{model}:batchEmbedContents",
        "/v1beta/models/{model}:embedContent",
    ]
    assert events[0]["input_tokens"] > 0
    assert [(e["input_tokens"], e["output_tokens"]) for e in events[1:]] == [(1200, 0), (1200, 0)]


async def test_gemini_embed_refusals_are_googles_shape(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with app(tmp_path, fake_openai) as running, running.http() as http:
        bad = await http.post(
            "/v1beta/models/demo:batchEmbedContents", json={"requests": []}, headers={"x-goog-api-key": KEY}
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
        unknown = await http.post("/v1beta/models/demo:embedText", json={}, headers={"x-goog-api-key": KEY})
        assert unknown.status_code == 404
        assert isinstance(unknown, httpx.Response)
    assert request_events(running.database) == []
