"""The official SDK clients of a test, on the module's `tollway` (a `TollwayProcess` fixture each module defines).

`consumer` is who they call as: the consumer the config declares (`tests.support.scenario.CONFIGURED`), unless
the module overrides `consumer` (a module that shares one `tollway serve` gives each test a consumer of its own,
so that each test's metered tokens are its own)."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

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
