"""The official openai SDK talks to a running Tollway; metered tokens equal what the upstream reported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.closing import Closing
from tests.support.fake_upstream import DEFAULT_USAGE, FakeOpenAI, Reply
from tests.support.net import wait_until
from tests.support.tollway_process import TollwayProcess

KEY = "acme-secret-key"


def gateway_config(fake: FakeOpenAI) -> dict[str, Any]:
    return {
        "providers": [
            {"name": "up", "type": "openai", "base_url": fake.base_url, "api_key": "sk-upstream-secret"},
            {"name": "local", "type": "simulator"},
        ],
        "models": [
            {"name": "gpt-4o", "targets": [{"provider": "up", "model": "gpt-4o-2024-08-06"}]},
            {"name": "demo", "targets": [{"provider": "local", "model": "demo"}]},
            {"name": "embed", "targets": [{"provider": "up", "model": "text-embedding-3-small"}]},
        ],
        "consumers": [
            {"username": "acme-corp", "keys": [KEY]},
            {"username": "globex", "keys": ["globex-secret-key"], "models": ["demo"]},
        ],
    }


@pytest.fixture
def tollway(workdir: Path, fake_openai: FakeOpenAI) -> Iterator[TollwayProcess]:
    process = TollwayProcess(workdir, gateway_config(fake_openai)).start()
    yield process
    process.stop()


def expect_tokens(tollway: TollwayProcess, subject: str, expected: dict[str, int]) -> None:
    wait_until(lambda: tollway.tokens_by_type(subject) == expected, timeout_s=10)


def test_non_streaming_chat_meters_exact_tokens_per_type(
    tollway: TollwayProcess, fake_openai: FakeOpenAI, closing: Closing
) -> None:
    client = closing(openai.OpenAI(base_url=tollway.base_url + "/v1", api_key=KEY))
    completion = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.content == "Hello from the fake upstream."
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 1200
    # 1200 prompt of which 1024 cached; 300 completion of which 128 reasoning.
    expect_tokens(tollway, "acme-corp", {"input": 176, "cache_read": 1024, "output": 300})
    forwarded = fake_openai.received[-1]
    assert forwarded.headers["Authorization"] == "Bearer sk-upstream-secret"
    assert KEY not in str(forwarded.headers)
    assert KEY not in str(forwarded.body)
    assert forwarded.body["model"] == "gpt-4o-2024-08-06"


def test_streaming_without_include_usage_hides_the_usage_chunk(
    tollway: TollwayProcess, fake_openai: FakeOpenAI, closing: Closing
) -> None:
    client = closing(openai.OpenAI(base_url=tollway.base_url + "/v1", api_key=KEY))
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake upstream."
    assert all(c.usage is None for c in chunks), "the client did not ask for usage"
    assert all(c.choices for c in chunks), "no usage-only chunk reaches a client that did not ask"
    assert fake_openai.received[-1].body["stream_options"] == {"include_usage": True}
    expect_tokens(tollway, "acme-corp", {"input": 176, "cache_read": 1024, "output": 300})


def test_streaming_with_include_usage_passes_it_through(tollway: TollwayProcess, closing: Closing) -> None:
    client = closing(openai.OpenAI(base_url=tollway.base_url + "/v1", api_key=KEY))
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == DEFAULT_USAGE["total_tokens"]
    expect_tokens(tollway, "acme-corp", {"input": 176, "cache_read": 1024, "output": 300})


async def test_async_client_streaming_and_not(tollway: TollwayProcess) -> None:
    client = openai.AsyncOpenAI(base_url=tollway.base_url + "/v1", api_key=KEY)
    first = await client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Hello there"}])
    assert first.usage is not None
    stream = await client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Hello again"}], stream=True
    )
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces).startswith("Simulated reply from demo")
    await client.close()
    # The simulator's documented count: 3 (reply priming) + 3 (one message) + 2 words = 8 for each prompt;
    # each reply is its default 24 tokens.
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (8, 24)
    expect_tokens(tollway, "acme-corp", {"input": 16, "output": 48})


def test_embeddings_are_metered_as_input(tollway: TollwayProcess, fake_openai: FakeOpenAI, closing: Closing) -> None:
    fake_openai.enqueue(Reply(usage={"prompt_tokens": 42, "total_tokens": 42}))
    client = closing(openai.OpenAI(base_url=tollway.base_url + "/v1", api_key=KEY))
    result = client.embeddings.create(model="embed", input=["a", "b"])
    assert len(result.data) == 2
    expect_tokens(tollway, "acme-corp", {"input": 42, "output": 0})


def test_models_lists_only_what_the_consumer_may_use(tollway: TollwayProcess, closing: Closing) -> None:
    acme = closing(openai.OpenAI(base_url=tollway.base_url + "/v1", api_key=KEY))
    assert sorted(m.id for m in acme.models.list()) == ["demo", "embed", "gpt-4o"]
    globex = closing(openai.OpenAI(base_url=tollway.base_url + "/v1", api_key="globex-secret-key"))
    assert [m.id for m in globex.models.list()] == ["demo"]
    with pytest.raises(openai.NotFoundError):
        globex.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])


@pytest.mark.parametrize("header", ["Authorization", "x-api-key", "apikey"])
def test_key_accepted_in_each_header(tollway: TollwayProcess, header: str, closing: Closing) -> None:
    value = f"Bearer {KEY}" if header == "Authorization" else KEY
    client = closing(
        openai.OpenAI(base_url=tollway.base_url + "/v1", api_key="unused", default_headers={header: value})
    )
    if header != "Authorization":
        client = client.with_options(default_headers={"Authorization": ""})
    completion = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.content


def test_unknown_or_missing_key_gets_401_in_openai_shape(tollway: TollwayProcess, closing: Closing) -> None:
    client = closing(openai.OpenAI(base_url=tollway.base_url + "/v1", api_key="wrong-key-123"))
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 401
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["code"] == "invalid_api_key"
    assert caught.value.response.headers["x-request-id"].startswith("req_")
