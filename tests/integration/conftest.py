"""The official SDK clients of a test, on the module's `tollway` (a `TollwayProcess` fixture each module defines),
as a consumer of the test's own; and the module-scoped fakes a module uses to share one `tollway serve` between
its tests (tests/support/sharing.py)."""

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
from tests.support.scenario import Consumer, claude_client, client
from tests.support.tollway_process import TollwayProcess


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
def consumer(tollway: TollwayProcess) -> Consumer:
    """A consumer of the test's own, with a key, created through the management API of the module's `tollway`:
    the usage metered for it is the test's alone, also where the module's tests share one gateway."""
    subject = f"test-{os.urandom(4).hex()}"
    key = f"{subject}-secret-key"
    with tollway.admin() as admin:
        created = admin.post("/api/v1/consumers", json={"username": subject})
        assert created.status_code == 201, created.text
        issued = admin.post(f"/api/v1/consumers/{subject}/keys", json={"name": "test", "key": key})
        assert issued.status_code == 201, issued.text
    return Consumer(subject, key)


# -- fakes shared by a module's tests (each test gets them reset: tests/support/sharing.py) ---------------


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
