"""Azure OpenAI deployments through Tollway: chat natively, Messages and Responses translated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.support.fake_azure import API_VERSION, FakeAzureOpenAI
from tests.support.fake_upstream import GPT_TOKENS
from tests.support.scenario import KEY, Consumer
from tests.support.sharing import fresh_fake
from tests.support.tollway_process import TollwayProcess


@pytest.fixture(scope="module")
def tollway(tmp_path_factory: pytest.TempPathFactory, shared_azure: FakeAzureOpenAI) -> Iterator[TollwayProcess]:
    """One gateway for the module's tests; each calls as a consumer of its own."""
    provider = {
        "name": "azure",
        "type": "azure_openai",
        "base_url": shared_azure.endpoint,
        "api_key": "azure-upstream-key",
        "api_version": API_VERSION,
    }
    config: dict[str, Any] = {
        "providers": [provider],
        "models": [{"name": "gpt-4o", "targets": [{"provider": "azure", "model": "my-gpt4o-deployment"}]}],
        "consumers": [{"username": "acme-corp", "keys": [KEY]}],
    }
    process = TollwayProcess(tmp_path_factory.mktemp("azure"), config).start()
    yield process
    process.stop()


fake_azure = fresh_fake("fake_azure", "shared_azure")


def test_chat_reaches_the_deployment_url(
    tollway: TollwayProcess, fake_azure: FakeAzureOpenAI, oai: openai.OpenAI, consumer: Consumer
) -> None:
    completion = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.content == "Hello from the fake upstream."
    chunks = list(
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake upstream."
    assert fake_azure.deployments == [("my-gpt4o-deployment", API_VERSION)] * 2
    sent = fake_azure.received[-1]
    assert sent.path == "/openai/deployments/my-gpt4o-deployment/chat/completions"
    assert sent.headers["api-key"] == "azure-upstream-key"
    assert "Authorization" not in sent.headers
    tollway.expect_tokens({k: v * 2 for k, v in GPT_TOKENS.items()}, consumer.subject)


def test_messages_and_responses_reach_azure_translated(
    tollway: TollwayProcess, oai: openai.OpenAI, consumer: Consumer
) -> None:
    with anthropic.Anthropic(base_url=tollway.base_url, api_key=consumer.key, max_retries=0) as claude:
        message = claude.messages.create(model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the fake upstream."
    response = oai.responses.create(model="gpt-4o", input="Hi")
    assert response.output_text == "Hello from the fake upstream."
    tollway.expect_tokens({k: v * 2 for k, v in GPT_TOKENS.items()}, consumer.subject)


def test_embeddings_reach_the_deployment(fake_azure: FakeAzureOpenAI, oai: openai.OpenAI) -> None:
    result = oai.embeddings.create(model="gpt-4o", input="hello")
    assert len(result.data) == 1
    assert fake_azure.received[-1].path == "/openai/deployments/my-gpt4o-deployment/embeddings"
