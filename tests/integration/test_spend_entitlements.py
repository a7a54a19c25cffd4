"""Entitlements enforced before the upstream call on every LLM endpoint, through the official SDKs.

A hard metered entitlement refuses at its limit in the caller's shape (OpenAI 429 insufficient_quota,
Anthropic rate_limit_error, Google RESOURCE_EXHAUSTED) and allows again once its period resets (frozen
clock); a soft one passes; count_tokens and the model list are never refused; a streamed call cut by
the client releases its hold and settles to what was metered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.support.in_process import InProcess, in_process
from tollway.clock import FrozenClock
from tollway.metering.aggregation import MeterQuery

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # the subscriptions start (and anchor) when first applied
ACME, GLOBEX, INITECH = "acme-key", "globex-key", "initech-key"
CONFIG: dict[str, Any] = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [
        {"username": "acme-corp", "keys": [ACME]},
        {"username": "globex", "keys": [GLOBEX]},
        {"username": "initech", "keys": [INITECH]},
        {"username": "walk-in", "keys": ["walk-in-key"]},
    ],
    "features": [
        {"key": "output-tokens", "meter": "llm_tokens", "filters": {"type": "output"}},
        {"key": "requests", "meter": "llm_requests"},
    ],
    "plans": [
        {
            "key": "capped",
            "name": "Capped",
            "currency": "USD",
            "billing_cadence": "P1M",
            "rate_cards": [
                {
                    "feature": "output-tokens",
                    "price": {"type": "unit", "amount": "0.00001"},
                    "entitlement": {"type": "metered", "limit": "100", "hard": True},
                }
            ],
        },
        {
            "key": "three-calls",
            "name": "Three calls a day",
            "currency": "USD",
            "billing_cadence": "P1M",
            "rate_cards": [
                {
                    "feature": "requests",
                    "price": {"type": "unit", "amount": "0.01"},
                    "entitlement": {"type": "metered", "limit": "3", "hard": True, "usage_period": "P1D"},
                }
            ],
        },
        {
            "key": "soft",
            "name": "Soft",
            "currency": "USD",
            "billing_cadence": "P1M",
            "rate_cards": [
                {
                    "feature": "output-tokens",
                    "price": {"type": "unit", "amount": "0.00001"},
                    "entitlement": {"type": "metered", "limit": "10", "hard": False},
                }
            ],
        },
    ],
    "customers": [
        {"key": "acme", "name": "Acme", "usage_from": ["acme-corp"], "subscription": {"plan": "capped"}},
        {"key": "globex", "name": "Globex", "usage_from": ["globex"], "subscription": {"plan": "three-calls"}},
        {"key": "initech", "name": "Initech", "usage_from": ["initech"], "subscription": {"plan": "soft"}},
    ],
}
CHAT = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper and the sea."}]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def tollway(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[InProcess]:
    async with in_process(tmp_path, CONFIG, clock=clock) as running:
        yield running


def oai(tollway: InProcess, key: str, http: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://tollway/v1", api_key=key, http_client=http, max_retries=0)


async def counters(tollway: InProcess) -> list[tuple[Decimal, Decimal]]:
    assert tollway.runtime.spend is not None
    assert tollway.runtime.counters is not None
    admission = tollway.runtime.spend.admission
    assert admission is not None
    found = await tollway.runtime.counters.read(sorted(k for k in admission.seeded if k.startswith("ent:")))
    return [(c.used, c.reserved) for c in found if c is not None]


async def test_hard_output_limit_refuses_on_every_format_and_resets(tollway: InProcess, clock: FrozenClock) -> None:
    async with tollway.http2() as http, tollway.http() as raw, oai(tollway, ACME, http) as client:
        for _ in range(4):  # 4 x 24 = 96 of 100
            answer = await client.chat.completions.create(model="demo", messages=CHAT, max_tokens=24)  # type: ignore[arg-type]
            assert answer.usage is not None
            assert answer.usage.completion_tokens == 24
        assert await counters(tollway) == [(Decimal(96), Decimal(0))]
        with pytest.raises(openai.RateLimitError) as chat:
            await client.chat.completions.create(model="demo", messages=CHAT, max_tokens=24)  # type: ignore[arg-type]
        assert chat.value.status_code == 429
        body = chat.value.body
        assert isinstance(body, dict)
        assert body["code"] == "insufficient_quota"
        assert body["type"] == "insufficient_quota"
        assert body["message"] == (
            "Limit reached: the 'output-tokens' entitlement of customer 'acme' allows 100 per usage period "
            "(2026-11-23T12:00:00Z to 2026-12-23T12:00:00Z); 96 used, and this request may use up to 24. "
            "It resets at 2026-12-23T12:00:00Z."
        )
        assert chat.value.response.headers["retry-after"] == str(30 * 86400)
        assert chat.value.response.headers["x-tollway-limit"] == "entitlement:output-tokens"
        # the remaining 4 tokens are still there for a request that asks for no more
        small = await client.chat.completions.create(model="demo", messages=CHAT, max_tokens=4)  # type: ignore[arg-type]
        assert small.usage is not None
        assert small.usage.completion_tokens == 4
        with pytest.raises(openai.RateLimitError):
            await client.responses.create(model="demo", input="Hello", max_output_tokens=16)
        async with (
            tollway.http2() as http_claude,
            anthropic.AsyncAnthropic(
                base_url="http://tollway", api_key=ACME, http_client=http_claude, max_retries=0
            ) as claude,
        ):
            with pytest.raises(anthropic.RateLimitError) as messages:
                await claude.messages.create(model="demo", max_tokens=16, messages=[{"role": "user", "content": "Hi"}])
            assert messages.value.body == {
                "type": "error",
                "error": {
                    "type": "rate_limit_error",
                    "message": body["message"].replace("96 used", "100 used").replace("up to 24", "up to 16"),
                },
            }
            counted = await claude.messages.count_tokens(model="demo", messages=[{"role": "user", "content": "Hi"}])
            assert counted.input_tokens > 0  # never refused
        gemini = await raw.post(
            "/v1beta/models/demo:generateContent",
            headers={"x-goog-api-key": ACME},
            json={"contents": [{"parts": [{"text": "Hi"}]}]},
        )
        assert gemini.status_code == 429
        assert gemini.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert "'output-tokens' entitlement" in gemini.json()["error"]["message"]
        assert (await client.models.list()).data[0].id == "demo"  # never refused
        embedded = await client.embeddings.create(model="demo", input="no output tokens")
        assert len(embedded.data) == 1  # an embedding uses no output tokens: this limit does not govern it
        clock.set(datetime(2026, 12, 23, 12, 0, 1, tzinfo=UTC))  # the next usage period
        again = await client.chat.completions.create(model="demo", messages=CHAT, max_tokens=24)  # type: ignore[arg-type]
        assert again.usage is not None
        assert again.usage.completion_tokens == 24


async def test_a_request_limit_governs_embeddings_too_and_soft_limits_pass(tollway: InProcess) -> None:
    async with tollway.http2() as http, oai(tollway, GLOBEX, http) as globex, oai(tollway, INITECH, http) as initech:
        await globex.embeddings.create(model="demo", input="one")
        await globex.chat.completions.create(model="demo", messages=CHAT, max_tokens=2)  # type: ignore[arg-type]
        await globex.embeddings.create(model="demo", input="three")
        with pytest.raises(openai.RateLimitError) as refused:
            await globex.embeddings.create(model="demo", input="four")
        assert "the 'requests' entitlement of customer 'globex' allows 3 per usage period" in refused.value.message
        assert "(2026-11-23T12:00:00Z to 2026-11-24T12:00:00Z)" in refused.value.message
        for _ in range(3):  # a soft limit of 10 output tokens: overage is billed, never refused
            await initech.chat.completions.create(model="demo", messages=CHAT, max_tokens=24)  # type: ignore[arg-type]
    async with tollway.http2() as http, oai(tollway, "walk-in-key", http) as walk_in:
        await walk_in.chat.completions.create(model="demo", messages=CHAT, max_tokens=24)  # type: ignore[arg-type]


async def test_a_cut_stream_releases_its_hold_and_settles_what_was_metered(tollway: InProcess) -> None:
    async with (
        tollway.http() as raw,
        raw.stream(
            "POST",
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {ACME}"},
            json={"model": "demo", "messages": CHAT, "max_tokens": 40, "stream": True},
        ) as response,
    ):
        assert response.status_code == 200
        async for _ in response.aiter_bytes():
            break  # the client goes away after the first chunk
    [(used, reserved)] = await counters(tollway)
    assert reserved == Decimal(0)  # the hold is gone
    assert Decimal(0) < used < Decimal(40)  # what the call used before the cut, not the 40 it reserved
    assert used == await metered_output(tollway, used)  # the counter holds exactly what metering stored


async def metered_output(tollway: InProcess, expected: Decimal) -> Decimal:
    """The output tokens stored for acme-corp, once they reach `expected` (or after 5 s)."""
    query = MeterQuery(
        start=START - timedelta(days=1),
        end=START + timedelta(days=1),
        subjects=("acme-corp",),
        filter_group_by={"type": ("output",)},
    )
    total = Decimal(0)
    for _ in range(100):
        rows = await tollway.runtime.metering.query("llm_tokens", query)
        total = sum((row.value for row in rows), Decimal(0))
        if total == expected:
            break
        await asyncio.sleep(0.05)
    return total
