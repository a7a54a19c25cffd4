"""The official openai SDK talks to a running Tollway; metered tokens equal what the upstream reported."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.support.closing import Closing
from tests.support.fake_upstream import DEFAULT_USAGE, GPT_TOKENS, FakeOpenAI, Reply
from tests.support.scenario import Consumer, gateway_config
from tests.support.sharing import fresh_fake
from tests.support.tollway_process import TollwayProcess


@pytest.fixture(scope="module")
def tollway(tmp_path_factory: pytest.TempPathFactory, shared_openai: FakeOpenAI) -> Iterator[TollwayProcess]:
    """One gateway for the module's tests (tests/support/sharing.py)."""
    process = TollwayProcess(tmp_path_factory.mktemp("openai-sdk"), gateway_config(shared_openai)).start()
    yield process
    process.stop()


fake_openai = fresh_fake("fake_openai", "shared_openai")


def test_non_streaming_chat_meters_exact_tokens_per_type(
    tollway: TollwayProcess, fake_openai: FakeOpenAI, oai: openai.OpenAI, consumer: Consumer
) -> None:
    client = oai
    completion = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.content == "Hello from the fake upstream."
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 1200
    # 1200 prompt of which 1024 cached; 300 completion of which 128 reasoning.
    tollway.expect_tokens(GPT_TOKENS, consumer.subject)
    forwarded = fake_openai.received[-1]
    assert forwarded.headers["Authorization"] == "Bearer sk-upstream-secret"
    assert consumer.key not in str(forwarded.headers)
    assert consumer.key not in str(forwarded.body)
    assert forwarded.body["model"] == "gpt-4o-2024-08-06"


def test_streaming_without_include_usage_hides_the_usage_chunk(
    tollway: TollwayProcess, fake_openai: FakeOpenAI, oai: openai.OpenAI, consumer: Consumer
) -> None:
    client = oai
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake upstream."
    assert all(c.usage is None for c in chunks), "the client did not ask for usage"
    assert all(c.choices for c in chunks), "no usage-only chunk reaches a client that did not ask"
    assert fake_openai.received[-1].body["stream_options"] == {"include_usage": True}
    tollway.expect_tokens(GPT_TOKENS, consumer.subject)


def test_streaming_with_include_usage_passes_it_through(
    tollway: TollwayProcess, oai: openai.OpenAI, consumer: Consumer
) -> None:
    client = oai
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
    tollway.expect_tokens(GPT_TOKENS, consumer.subject)


async def test_async_client_streaming_and_not(tollway: TollwayProcess, consumer: Consumer) -> None:
    client = openai.AsyncOpenAI(base_url=tollway.base_url + "/v1", api_key=consumer.key)
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
    tollway.expect_tokens({"input": 16, "output": 48}, consumer.subject)


def test_embeddings_are_metered_as_input(
    tollway: TollwayProcess, fake_openai: FakeOpenAI, oai: openai.OpenAI, consumer: Consumer
) -> None:
    fake_openai.enqueue(Reply(usage={"prompt_tokens": 42, "total_tokens": 42}))
    client = oai
    result = client.embeddings.create(model="embed", input=["a", "b"])
    assert len(result.data) == 2
    tollway.expect_tokens({"input": 42, "output": 0}, consumer.subject)


def test_models_lists_only_what_the_consumer_may_use(
    tollway: TollwayProcess, closing: Closing, oai: openai.OpenAI
) -> None:
    acme = oai
    assert sorted(m.id for m in acme.models.list()) == ["demo", "embed", "gpt-4o"]
    globex = closing(openai.OpenAI(base_url=tollway.base_url + "/v1", api_key="globex-secret-key"))
    assert [m.id for m in globex.models.list()] == ["demo"]
    with pytest.raises(openai.NotFoundError):
        globex.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])


@pytest.mark.parametrize("header", ["Authorization", "x-api-key", "apikey"])
def test_key_accepted_in_each_header(
    tollway: TollwayProcess, header: str, closing: Closing, consumer: Consumer
) -> None:
    value = f"Bearer {consumer.key}" if header == "Authorization" else consumer.key
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
