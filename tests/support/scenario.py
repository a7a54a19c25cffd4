"""Shared pieces of gateway scenarios: a config over a fake upstream, the consumer and its SDK clients, usage
blocks, expected meters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anthropic
import openai

from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_upstream import FakeOpenAI
from tests.support.prometheus import prometheus_value as prometheus_value  # scenarios import it from here
from tests.support.tollway_process import SUBJECT as SUBJECT  # re-exported: the subject of KEY
from tests.support.tollway_process import TollwayProcess

KEY = "acme-secret-key"


@dataclass(frozen=True)
class Consumer:
    """Who a test's SDK clients call as: the metered subject and its API key."""

    subject: str
    key: str


def config_for(fake: FakeOpenAI, **extra_providers: str) -> dict[str, Any]:
    """Model `gpt-4o` on the fake upstream; each extra `name=base_url` adds a provider and a model `name`."""
    providers: list[dict[str, Any]] = [
        {"name": "up", "type": "openai", "base_url": fake.base_url, "api_key": "sk-upstream-secret"}
    ]
    models: list[dict[str, Any]] = [{"name": "gpt-4o", "targets": [{"provider": "up", "model": "gpt-4o"}]}]
    for name, base_url in extra_providers.items():
        providers.append({"name": name, "type": "openai", "base_url": base_url, "api_key": "sk-other"})
        models.append({"name": name, "targets": [{"provider": name, "model": name}]})
    return {"providers": providers, "models": models, "consumers": [{"username": SUBJECT, "keys": [KEY]}]}


def gateway_config(fake: FakeOpenAI) -> dict[str, Any]:
    """Models `gpt-4o` and `embed` on the fake upstream, `demo` on the simulator; consumer `globex` may use only
    `demo`."""
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
            {"username": SUBJECT, "keys": [KEY]},
            {"username": "globex", "keys": ["globex-secret-key"], "models": ["demo"]},
        ],
    }


def mixed_config(fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic) -> dict[str, Any]:
    """Model `claude-sonnet` on the fake Anthropic, `gpt-4o` on the fake OpenAI and `demo` on the simulator."""
    return {
        "providers": [
            {"name": "claude", "type": "anthropic", "base_url": fake_anthropic.base_url, "api_key": "sk-ant-upstream"},
            {"name": "up", "type": "openai", "base_url": fake_openai.base_url, "api_key": "sk-upstream-secret"},
            {"name": "local", "type": "simulator"},
        ],
        "models": [
            {"name": "claude-sonnet", "targets": [{"provider": "claude", "model": "claude-sonnet-4-5-20250929"}]},
            {"name": "gpt-4o", "targets": [{"provider": "up", "model": "gpt-4o-2024-08-06"}]},
            {"name": "demo", "targets": [{"provider": "local", "model": "demo"}]},
        ],
        "consumers": [{"username": SUBJECT, "keys": [KEY]}],
    }


def usage_block(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    """An OpenAI usage object as the API reports it."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
    }


def metered(usages: Iterable[dict[str, Any]]) -> dict[str, int]:
    """What the llm_tokens meter must show, per token type, for these upstream usage blocks."""
    totals = {"input": 0, "output": 0, "cache_read": 0}
    for usage in usages:
        cached = usage["prompt_tokens_details"]["cached_tokens"]
        totals["input"] += usage["prompt_tokens"] - cached
        totals["cache_read"] += cached
        totals["output"] += usage["completion_tokens"]
    return {kind: tokens for kind, tokens in totals.items() if kind != "cache_read" or tokens}


def client(tollway: TollwayProcess, key: str = KEY) -> openai.OpenAI:
    """The openai SDK on Tollway's /v1 (no retries: a test sees every answer); close it (`with`)."""
    return openai.OpenAI(base_url=tollway.base_url + "/v1", api_key=key, max_retries=0)


def claude_client(tollway: TollwayProcess, key: str = KEY) -> anthropic.Anthropic:
    """The anthropic SDK on Tollway (no retries); close it (`with`)."""
    return anthropic.Anthropic(base_url=tollway.base_url, api_key=key, max_retries=0)
