"""The official SDK clients of a test, on the module's `tollway` (a `TollwayProcess` fixture each module defines),
and what a module needs to share one `tollway serve` between its tests.

`consumer` is who the clients call as: the consumer the config declares (`tests.support.scenario.CONFIGURED`),
unless the module overrides it.

A module that shares one `tollway serve` between its tests (a new one costs about 3.4 s of CPU) starts it in a
module-scoped `tollway` over the module-scoped fakes below, and overrides two things so that its tests stay
independent of each other:

    @pytest.fixture(autouse=True)  # every test, whether it names the fake or not
    def fake_openai(shared_openai: FakeOpenAI) -> FakeOpenAI:
        shared_openai.reset()  # nothing received, nothing scripted, the default reply
        return shared_openai

    @pytest.fixture
    def consumer(own_consumer: Consumer) -> Consumer:
        return own_consumer  # a consumer of the test's own: its metered tokens and records are the test's alone

A test then reads the meters and records of `consumer.subject` (`tollway.expect_tokens(..., consumer.subject)`,
`request_events(database, consumer.subject)`, `calls_stored_through(..., subject=consumer.subject)`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_azure import FakeAzureOpenAI
from tests.support.fake_gemini import FakeGemini
from tests.support.fake_upstream import FakeOpenAI
from tests.support.scenario import CONFIGURED, Consumer, claude_client, client
from tests.support.tollway_process import TollwayProcess


@pytest.fixture
def consumer() -> Consumer:
    return CONFIGURED


@pytest.fixture
def oai(tollway: TollwayProcess, consumer: Consumer) -> Iterator[openai.OpenAI]:
    """The openai SDK on Tollway's /v1, as `consumer`, without retries."""
    with client(tollway, consumer.key) as sdk:
        yield sdk


@pytest.fixture
def claude(tollway: TollwayProcess, consumer: Consumer) -> Iterator[anthropic.Anthropic]:
    """The anthropic SDK on Tollway, as `consumer`, without retries."""
    with claude_client(tollway, consumer.key) as sdk:
        yield sdk


@pytest.fixture
def own_consumer(tollway: TollwayProcess) -> Consumer:
    """A new consumer with a key, created through the management API of the module's `tollway`."""
    subject = f"test-{os.urandom(4).hex()}"
    key = f"{subject}-secret-key"
    with tollway.admin() as admin:
        created = admin.post("/api/v1/consumers", json={"username": subject})
        assert created.status_code == 201, created.text
        issued = admin.post(f"/api/v1/consumers/{subject}/keys", json={"name": "test", "key": key})
        assert issued.status_code == 201, issued.text
    return Consumer(subject, key)


# -- fakes shared by a module's tests (reset by the module's function-scoped fixture of the usual name) -----


@pytest.fixture(scope="module")
def shared_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def shared_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def shared_gemini() -> Iterator[FakeGemini]:
    fake = FakeGemini()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def shared_azure() -> Iterator[FakeAzureOpenAI]:
    fake = FakeAzureOpenAI()
    fake.start()
    yield fake
    fake.stop()
