"""Shared pieces of gateway scenarios: a config over a fake upstream, usage blocks, expected meters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import openai

from tests.support.fake_upstream import FakeOpenAI
from tests.support.prometheus import prometheus_value as prometheus_value  # scenarios import it from here
from tests.support.tollway_process import TollwayProcess

KEY = "acme-secret-key"
SUBJECT = "acme-corp"


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


def client(tollway: TollwayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=tollway.base_url + "/v1", api_key=KEY, max_retries=0)
