"""Rate limits through the gateway (in-process app, official openai and anthropic SDKs, a frozen clock).

Requests per minute answer every call with OpenAI's x-ratelimit-* headers (Anthropic's anthropic-ratelimit-*
on Messages) and refuse past the limit with 429, Retry-After and the limit named; a token limit holds each
call's worst case and slides (half a minute later, half of the previous minute still counts); requests in
flight are capped for a barrier-released burst; rate limits made through the API are enforced after a refresh.
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

from tests.support.fake_upstream import FakeOpenAI, Reply
from tests.support.in_process import InProcess, in_process
from tollway.clock import FrozenClock
from tollway.gateway.admission import conservative_tokens
from tollway.gateway.providers.simulator import prompt_tokens

START = datetime(2026, 11, 23, 12, 0, 10, tzinfo=UTC)  # 10 s into a minute
ADMIN = "admin-token"


def chat(n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question {n:03d}: what keeps a lighthouse lamp turning at night?"}]


PROMPT = prompt_tokens({"messages": chat(0)})  # the simulator's own count: the gateway reserves it exactly


def config(upstream: str) -> dict[str, Any]:
    return {
        "providers": [
            {"name": "local", "type": "simulator"},
            {"name": "slow", "type": "openai", "base_url": upstream + "/v1", "api_key": "sk-test"},
        ],
        "models": [
            {
                "name": "demo",
                "targets": [{"provider": "local", "model": "demo"}],
                "price": {"input": "0.000001", "output": "0.000001"},
            },
            {
                "name": "slow",
                "targets": [{"provider": "slow", "model": "gpt-4o-mini"}],
                "price": {"input": "0.001", "output": "0.002"},
            },
        ],
        "consumers": [
            {"username": "rpm", "keys": ["rpm-secret-key"]},
            {"username": "tpm", "keys": ["tpm-secret-key"]},
            {"username": "claude", "keys": ["claude-key"]},
            {"username": "flight", "keys": ["flight-key"]},
            {"username": "free", "keys": ["free-secret-key"]},
            {"username": "thrifty", "keys": ["thrifty-secret-key"]},
            {"username": "frugal", "keys": ["frugal-secret-key"]},
            {"username": "keyed", "keys": ["keyed-config-key"]},
        ],
        "budgets": [
            {
                "key": "thrifty-day",
                "consumer": "thrifty",
                "kind": "tokens",
                "limit": "100",
                "window": "day",
                "on_exceeded": "degrade",
            },
            {
                "key": "frugal-day",
                "consumer": "frugal",
                "kind": "money",
                "limit": "0.05",
                "window": "day",
                "on_exceeded": "degrade",
                "route_to": "demo",
            },
        ],
        "rate_limits": [
            {"key": "rpm-3", "consumer": "rpm", "metric": "requests", "limit": "3", "window": "minute"},
            {"key": "tpm-100", "consumer": "tpm", "metric": "tokens", "limit": "100", "window": "minute"},
            {"key": "claude-rpm", "consumer": "claude", "metric": "requests", "limit": "5", "window": "minute"},
            {"key": "claude-out", "consumer": "claude", "metric": "output_tokens", "limit": "1000", "window": "hour"},
            {"key": "flight-3", "consumer": "flight", "metric": "in_flight", "limit": "3"},
        ],
    }


@pytest.fixture
async def tollway(tmp_path: Path, fake_openai: FakeOpenAI) -> AsyncIterator[InProcess]:
    async with in_process(
        tmp_path, config(fake_openai.origin), clock=FrozenClock(START), admin_token=ADMIN, spend_refresh_s=0.05
    ) as running:
        yield running


def client(tollway: InProcess, key: str, http: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://tollway/v1", api_key=key, http_client=http, max_retries=0)


async def test_requests_per_minute_headers_and_refusal(tollway: InProcess) -> None:
    async with tollway.http2() as http, client(tollway, "rpm-secret-key", http) as rpm:
        for n, left in enumerate(("2", "1", "0")):
            raw = await rpm.chat.completions.with_raw_response.create(
                model="demo",
                messages=chat(n),  # type: ignore[arg-type]
                max_tokens=5,
            )
            assert raw.headers["x-ratelimit-limit-requests"] == "3"
            assert raw.headers["x-ratelimit-remaining-requests"] == left
            assert raw.headers["x-ratelimit-reset-requests"] == "1m50s"  # this minute's 50 s left, then one more
            assert "x-ratelimit-limit-tokens" not in raw.headers
        with pytest.raises(openai.RateLimitError) as refused:
            await rpm.chat.completions.create(model="demo", messages=chat(3), max_tokens=5)  # type: ignore[arg-type]
    async with tollway.http() as plain:  # the cost preview sees the same limit, holding nothing
        preview = await plain.post(
            "/v1/cost/estimate",
            headers={"authorization": "Bearer rpm-secret-key"},
            json={"model": "demo", "max_tokens": 5, "messages": chat(3)},
        )
    assert preview.status_code == 200, preview.text
    assert preview.json()["allowed"] is False
    assert [(c["name"], c["used"], c["fits"]) for c in preview.json()["limits"]] == [("rate:rpm-3", "3", False)]
    assert preview.json()["refusal"].startswith("Rate limit reached: the requests rate limit 'rpm-3'")
    response = refused.value.response
    assert response.headers["x-tollway-limit"] == "rate:rpm-3"
    # the next minute starts in 50 s with the 3 weighted 1 - f: 3 (1 - f) + 1 <= 3 from f = 1/3, 20 s into it
    assert response.headers["retry-after"] == "70"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "rate_limit_exceeded"
    message = refused.value.body["message"]
    assert message.startswith(
        "Rate limit reached: the requests rate limit 'rpm-3' of consumer 'rpm' allows 3 per minute (a sliding "
        "window); 3 counted in the last minute, and this request needs 1."
    )


async def test_retry_after_follows_the_sliding_window(tollway: InProcess) -> None:
    clock = tollway.runtime.clock
    assert isinstance(clock, FrozenClock)
    async with tollway.http2() as http, client(tollway, "rpm-secret-key", http) as rpm:
        for n in range(3):
            await rpm.chat.completions.create(model="demo", messages=chat(n), max_tokens=5)  # type: ignore[arg-type]
        clock.advance(timedelta(seconds=60))  # 10 s into the next minute: the 3 still count 50/60 of 3 = 2.5
        with pytest.raises(openai.RateLimitError) as refused:
            await rpm.chat.completions.create(model="demo", messages=chat(3), max_tokens=5)  # type: ignore[arg-type]
        # 3 * (1 - f) + 1 <= 3 once f >= 1/3: 20 s into the minute, 10 s from now
        assert refused.value.response.headers["retry-after"] == "10"
        clock.advance(timedelta(seconds=10))
        raw = await rpm.chat.completions.with_raw_response.create(
            model="demo",
            messages=chat(4),  # type: ignore[arg-type]
            max_tokens=5,
        )
        assert raw.headers["x-ratelimit-remaining-requests"] == "0"  # 3 * 40/60 + 1 = 3


async def test_a_token_limit_holds_the_worst_case_and_slides(tollway: InProcess) -> None:
    per_call = PROMPT + 10  # exact on the simulator: prompt + max_tokens
    assert per_call == 28
    clock = tollway.runtime.clock
    assert isinstance(clock, FrozenClock)
    async with tollway.http2() as http, client(tollway, "tpm-secret-key", http) as tpm:
        for n in range(3):
            raw = await tpm.chat.completions.with_raw_response.create(
                model="demo",
                messages=chat(n),  # type: ignore[arg-type]
                max_tokens=10,
            )
            assert raw.headers["x-ratelimit-limit-tokens"] == "100"
            assert raw.headers["x-ratelimit-remaining-tokens"] == str(100 - per_call * (n + 1))
        with pytest.raises(openai.RateLimitError) as refused:  # 84 + 28 > 100
            await tpm.chat.completions.create(model="demo", messages=chat(3), max_tokens=10)  # type: ignore[arg-type]
        assert refused.value.response.headers["x-tollway-limit"] == "rate:tpm-100"
        assert "84 counted in the last minute, and this request needs 28" in str(refused.value.body)
        clock.advance(timedelta(seconds=80))  # 30 s into the next minute: 84 * 30/60 = 42 counted, 58 left
        raw = await tpm.chat.completions.with_raw_response.create(
            model="demo",
            messages=chat(4),  # type: ignore[arg-type]
            max_tokens=10,
        )
        assert raw.headers["x-ratelimit-remaining-tokens"] == str(100 - 42 - per_call)
        assert raw.headers["x-ratelimit-reset-tokens"] == "1m30s"


async def test_anthropic_callers_get_anthropic_headers(tollway: InProcess) -> None:
    async with (
        tollway.http2() as http,
        anthropic.AsyncAnthropic(
            base_url="http://tollway", api_key="claude-key", http_client=http, max_retries=0
        ) as claude,
    ):
        raw = await claude.messages.with_raw_response.create(
            model="demo", max_tokens=20, messages=[{"role": "user", "content": "Say hello."}]
        )
        message = await raw.parse()
        for _ in range(4):
            await claude.messages.create(model="demo", max_tokens=20, messages=[{"role": "user", "content": "Hi."}])
        with pytest.raises(anthropic.RateLimitError) as refused:  # Anthropic's own shape and headers
            await claude.messages.create(model="demo", max_tokens=20, messages=[{"role": "user", "content": "Hi."}])
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["error"]["type"] == "rate_limit_error"
    assert refused.value.body["error"]["message"].startswith(
        "Rate limit reached: the requests rate limit 'claude-rpm' of consumer 'claude' allows 5 per minute"
    )
    assert refused.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert refused.value.response.headers["retry-after"] == "62"  # 5 (1 - f) + 1 <= 5 from f = 1/5: 12 s in
    headers = raw.headers
    assert headers["anthropic-ratelimit-requests-limit"] == "5"
    assert headers["anthropic-ratelimit-requests-remaining"] == "4"
    assert (
        headers["anthropic-ratelimit-requests-reset"] == "2026-11-23T12:02:00Z"
    )  # RFC 3339: when the window is empty again
    assert headers["anthropic-ratelimit-output-tokens-limit"] == "1000"
    assert headers["anthropic-ratelimit-output-tokens-remaining"] == str(1000 - message.usage.output_tokens)
    assert headers["anthropic-ratelimit-tokens-remaining"] == str(1000 - message.usage.output_tokens)
    assert "x-ratelimit-limit-requests" not in headers


async def test_requests_in_flight_are_capped_for_a_burst(tollway: InProcess, fake_openai: FakeOpenAI) -> None:
    fake_openai.default = Reply(delay_s=0.3, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
    barrier = asyncio.Event()
    limits: list[str] = []
    async with tollway.http2() as http, client(tollway, "flight-key", http) as flight:

        async def one(n: int) -> bool:
            await barrier.wait()
            try:
                await flight.chat.completions.create(model="slow", messages=chat(n), max_tokens=5)  # type: ignore[arg-type]
            except openai.RateLimitError as refused:
                limits.append(refused.response.headers["x-tollway-limit"])
                return False
            return True

        calls = [asyncio.create_task(one(n)) for n in range(12)]
        await asyncio.sleep(0)
        barrier.set()
        outcomes = await asyncio.gather(*calls)
        assert outcomes.count(True) == 3
        assert limits == ["rate:flight-3"] * 9
        # every hold was given back: three more go through one after the other
        for n in range(3):
            await flight.chat.completions.create(model="slow", messages=chat(n), max_tokens=5)  # type: ignore[arg-type]


async def test_rate_limits_through_the_api(tollway: InProcess) -> None:
    headers = {"authorization": f"Bearer {ADMIN}"}
    async with tollway.http() as api:
        created = await api.post(
            "/api/v1/rate-limits",
            headers=headers,
            json={"key": "each-rpm", "scope": "consumer", "target": "*", "metric": "requests", "limit": "1"},
        )
        assert created.status_code == 201, created.text
        assert {k: created.json()[k] for k in ("scope", "target", "metric", "limit", "window", "managedBy")} == {
            "scope": "consumer",
            "target": "*",
            "metric": "requests",
            "limit": "1",
            "window": "minute",
            "managedBy": "api",
        }
        bad = await api.post(
            "/api/v1/rate-limits",
            headers=headers,
            json={"key": "bad", "scope": "consumer", "target": "x", "metric": "tokens", "limit": "1.5"},
        )
        assert bad.status_code == 400
        assert "whole number" in bad.text
        listed = await api.get("/api/v1/rate-limits", headers=headers)
        assert [r["key"] for r in listed.json()] == [
            "claude-out",
            "claude-rpm",
            "each-rpm",
            "flight-3",
            "rpm-3",
            "tpm-100",
        ]
        await tollway.runtime.spend.refresh()  # type: ignore[union-attr]
        async with tollway.http2() as http, client(tollway, "free-secret-key", http) as free:
            await free.chat.completions.create(model="demo", messages=chat(1), max_tokens=5)  # type: ignore[arg-type]
            with pytest.raises(openai.RateLimitError) as refused:
                await free.chat.completions.create(model="demo", messages=chat(2), max_tokens=5)  # type: ignore[arg-type]
            assert refused.value.response.headers["x-tollway-limit"] == "rate:each-rpm"
            patched = await api.patch("/api/v1/rate-limits/each-rpm", headers=headers, json={"limit": "10"})
            assert patched.status_code == 200
            await tollway.runtime.spend.refresh()  # type: ignore[union-attr]
            await free.chat.completions.create(model="demo", messages=chat(2), max_tokens=5)  # type: ignore[arg-type]
        assert (await api.delete("/api/v1/rate-limits/each-rpm", headers=headers)).status_code == 204
        missing = await api.get("/api/v1/rate-limits/each-rpm", headers=headers)
        assert missing.status_code == 404


async def test_a_degrading_budget_lowers_max_tokens(tollway: InProcess, fake_openai: FakeOpenAI) -> None:
    fake_openai.default = Reply(usage={"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47})
    prompt = conservative_tokens({"model": "slow", "messages": chat(0)})  # what the gateway reserves for the input
    async with tollway.http2() as http, client(tollway, "thrifty-secret-key", http) as thrifty:
        raw = await thrifty.chat.completions.with_raw_response.create(
            model="slow",
            messages=chat(0),  # type: ignore[arg-type]
            max_tokens=80,
        )
        assert prompt + 80 > 100  # the call as asked would not fit the budget of 100 tokens
        assert raw.headers["x-tollway-degraded"] == f"max_tokens={100 - prompt}"
        assert fake_openai.received[-1].body["max_tokens"] == 100 - prompt  # what the upstream was asked
        assert raw.headers["x-tollway-budget-name"] == "thrifty-day"
        # 47 used (what the upstream reported): 53 left, so the next call may ask for 53 - 40 output tokens
        raw = await thrifty.chat.completions.with_raw_response.create(
            model="slow",
            messages=chat(0),  # type: ignore[arg-type]
            max_tokens=80,
        )
        assert raw.headers["x-tollway-degraded"] == f"max_tokens={100 - 47 - prompt}"
        assert fake_openai.received[-1].body["max_tokens"] == 100 - 47 - prompt
        # 94 used: less room than the input alone needs: refused with the budget's own message
        with pytest.raises(openai.RateLimitError) as refused:
            await thrifty.chat.completions.create(model="slow", messages=chat(0), max_tokens=80)  # type: ignore[arg-type]
    assert refused.value.response.headers["x-tollway-limit"] == "budget:thrifty-day"
    assert len(fake_openai.received) == 2


async def test_a_degrading_budget_routes_to_a_cheaper_model(tollway: InProcess, fake_openai: FakeOpenAI) -> None:
    async with tollway.http2() as http, client(tollway, "frugal-secret-key", http) as frugal:
        raw = await frugal.chat.completions.with_raw_response.create(
            model="slow",
            messages=chat(0),  # type: ignore[arg-type]
            max_tokens=50,
        )
        answer = raw.parse()
    assert raw.headers["x-tollway-degraded"] == "model=demo"
    assert fake_openai.received == []  # the dear model's upstream was never called
    assert answer.usage is not None
    cost = Decimal("0.000001") * (answer.usage.prompt_tokens + answer.usage.completion_tokens)
    assert Decimal(raw.headers["x-tollway-cost"]) == cost  # priced as the cheaper model
    headers = {"authorization": f"Bearer {ADMIN}"}
    async with tollway.http() as api:
        read = (await api.get("/api/v1/budgets/frugal-day", headers=headers)).json()
        assert (read["onExceeded"], read["routeTo"]) == ("degrade", "demo")
        changed = await api.patch("/api/v1/budgets/frugal-day", headers=headers, json={"onExceeded": "refuse"})
        assert changed.status_code == 400  # routeTo goes with degrade
        assert changed.json()["detail"] == "route_to (a model's name) goes with on_exceeded: degrade"


async def test_a_budget_and_a_rate_limit_on_one_api_key(tollway: InProcess) -> None:
    headers = {"authorization": f"Bearer {ADMIN}"}
    async with tollway.http() as api:
        issued = (await api.post("/api/v1/consumers/keyed/keys", headers=headers, json={"name": "ci"})).json()
        other = (await api.post("/api/v1/consumers/keyed/keys", headers=headers, json={"name": "prod"})).json()
        budget = await api.post(
            "/api/v1/budgets",
            headers=headers,
            json={"key": "ci-key", "scope": "key", "target": issued["id"], "kind": "tokens", "limit": "60"},
        )
        assert budget.status_code == 201, budget.text
        limit = await api.post(
            "/api/v1/rate-limits",
            headers=headers,
            json={"key": "ci-rpm", "scope": "key", "target": issued["id"], "metric": "requests", "limit": "10"},
        )
        assert limit.status_code == 201, limit.text
        await tollway.runtime.spend.refresh()  # type: ignore[union-attr]
        async with tollway.http2() as http, client(tollway, issued["key"], http) as ci:
            raw = await ci.chat.completions.with_raw_response.create(
                model="demo",
                messages=chat(0),  # type: ignore[arg-type]
                max_tokens=10,
            )
            assert raw.headers["x-tollway-budget-name"] == "ci-key"
            assert raw.headers["x-tollway-budget-remaining"] == str(60 - PROMPT - 10)
            assert raw.headers["x-ratelimit-remaining-requests"] == "9"
            await ci.chat.completions.create(model="demo", messages=chat(1), max_tokens=10)  # type: ignore[arg-type]
            with pytest.raises(openai.RateLimitError) as refused:  # 28 + 28 + 28 > 60
                await ci.chat.completions.create(model="demo", messages=chat(2), max_tokens=10)  # type: ignore[arg-type]
            assert "the tokens budget 'ci-key' of API key" in str(refused.value.body)
        async with tollway.http2() as http, client(tollway, other["key"], http) as prod:  # the consumer's other key
            for n in range(3):
                raw = await prod.chat.completions.with_raw_response.create(
                    model="demo",
                    messages=chat(n),  # type: ignore[arg-type]
                    max_tokens=10,
                )
                assert "x-ratelimit-remaining-requests" not in raw.headers
        status = await api.get("/api/v1/budgets/ci-key", headers=headers)
        assert (status.json()["used"], status.json()["remaining"]) == ("56", "4")
