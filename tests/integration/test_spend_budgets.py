"""Budgets: config, API and enforcement through the gateway (in-process app, official openai SDK).

A money budget on a customer prices calls as its plan does; a token budget on a consumer counts every token;
a barrier-released burst of 50 calls against room for 10 admits 10; the API reads used/reserved/remaining
as decimal strings and creates, changes and deletes budgets that the gateway enforces within a refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.in_process import InProcess, in_process
from tollway.clock import FrozenClock
from tollway.gateway.providers.simulator import prompt_tokens
from tollway.metering.aggregation import MeterQuery

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ADMIN = "admin-token"
CONFIG: dict[str, Any] = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [
        {
            "name": "demo",
            "targets": [{"provider": "local", "model": "demo"}],
            "price": {"input": "0.000001", "output": "0.00001"},
        }
    ],
    "consumers": [
        {"username": "acme-corp", "keys": ["acme-key"]},
        {"username": "bot", "keys": ["bot-secret-key"]},
        {"username": "burst", "keys": ["burst-key"]},
    ],
    "features": [
        {"key": "input-tokens", "meter": "llm_tokens", "filters": {"type": "input"}},
        {"key": "output-tokens", "meter": "llm_tokens", "filters": {"type": "output"}},
    ],
    "plans": [
        {
            "key": "pro",
            "name": "Pro",
            "currency": "USD",
            "billing_cadence": "P1M",
            "rate_cards": [
                {"feature": "input-tokens", "price": {"type": "unit", "amount": "0.0001"}},
                {
                    "feature": "output-tokens",
                    "price": {"type": "unit", "amount": "0.001"},
                    "entitlement": {"type": "metered", "limit": "1000", "hard": True},
                },
            ],
        }
    ],
    "customers": [{"key": "acme", "name": "Acme", "usage_from": ["acme-corp"], "subscription": {"plan": "pro"}}],
    "budgets": [
        {"key": "acme-daily", "customer": "acme", "kind": "money", "limit": "0.05", "window": "day"},
        {"key": "bot-hourly", "consumer": "bot", "kind": "tokens", "limit": "80", "window": "hour"},
    ],
}


def chat(n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question {n:03d}: what keeps a lighthouse lamp turning at night?"}]


PROMPT = prompt_tokens({"messages": chat(0)})  # the simulator's own count: the gateway reserves it exactly


@pytest.fixture
async def tollway(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process(
        tmp_path, CONFIG, clock=FrozenClock(START), admin_token=ADMIN, spend_refresh_s=0.05
    ) as running:
        yield running


def client(tollway: InProcess, key: str, http: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://tollway/v1", api_key=key, http_client=http, max_retries=0)


async def test_a_money_budget_prices_calls_as_the_plan_does(tollway: InProcess) -> None:
    # per call: 18 input tokens at 0.0001 + 10 output tokens at 0.001 = 0.0118: 4 fit in 0.05, a 5th does not
    assert PROMPT == 18
    async with tollway.http2() as http, client(tollway, "acme-key", http) as acme:
        for n in range(4):
            answer = await acme.chat.completions.create(model="demo", messages=chat(n), max_tokens=10)  # type: ignore[arg-type]
            assert answer.usage is not None
            assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (18, 10)
        with pytest.raises(openai.RateLimitError) as refused:
            await acme.chat.completions.create(model="demo", messages=chat(4), max_tokens=10)  # type: ignore[arg-type]
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["message"] == (
        "Limit reached: the money budget 'acme-daily' of customer 'acme' allows 0.05 per day "
        "(2026-11-23T00:00:00Z to 2026-11-24T00:00:00Z); 0.0472 used, and this request may use up to 0.0118. "
        "It resets at 2026-11-24T00:00:00Z."
    )
    assert refused.value.response.headers["x-tollway-limit"] == "budget:acme-daily"
    assert refused.value.response.headers["retry-after"] == str(12 * 3600)
    async with tollway.http() as api:
        read = await api.get("/api/v1/budgets/acme-daily", headers={"authorization": f"Bearer {ADMIN}"})
    assert read.status_code == 200
    body = read.json()
    assert {k: body[k] for k in ("scope", "target", "kind", "limit", "window", "hard", "managedBy")} == {
        "scope": "customer",
        "target": "acme",
        "kind": "money",
        "limit": "0.05",
        "window": "day",
        "hard": True,
        "managedBy": "config",
    }
    assert (body["currency"], body["used"], body["reserved"], body["remaining"]) == ("USD", "0.0472", "0", "0.0028")
    assert (body["windowStart"], body["resetsAt"]) == ("2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z")


async def test_a_token_budget_on_a_consumer_and_the_api_lifecycle(tollway: InProcess) -> None:
    headers = {"authorization": f"Bearer {ADMIN}"}
    async with tollway.http2() as http, client(tollway, "bot-secret-key", http) as bot:
        await bot.chat.completions.create(model="demo", messages=chat(1), max_tokens=24)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as refused:  # 42 used + 42 asked > 80
            await bot.chat.completions.create(model="demo", messages=chat(2), max_tokens=24)  # type: ignore[arg-type]
        assert "the tokens budget 'bot-hourly' of consumer 'bot' allows 80 per hour" in refused.value.message
        async with tollway.http() as api:
            raised = await api.patch("/api/v1/budgets/bot-hourly", headers=headers, json={"limit": "1000"})
            assert raised.status_code == 200
            assert raised.json()["limit"] == "1000"
            assert raised.json()["used"] == "42"
            await wait_for_rules(tollway)
            await bot.chat.completions.create(model="demo", messages=chat(2), max_tokens=24)  # type: ignore[arg-type]
            created = await api.post(
                "/api/v1/budgets",
                headers=headers,
                json={"key": "burst-day", "scope": "consumer", "target": "burst", "kind": "tokens", "limit": "7.5"},
            )
            assert created.status_code == 400
            assert "whole number of tokens" in created.json()["detail"]
            duplicate = await api.post(
                "/api/v1/budgets",
                headers=headers,
                json={"key": "bot-hourly", "scope": "consumer", "target": "x", "kind": "tokens", "limit": "7"},
            )
            assert duplicate.status_code == 409
            listed = await api.get("/api/v1/budgets", headers=headers)
            assert [b["key"] for b in listed.json()] == ["acme-daily", "bot-hourly"]
            assert (await api.delete("/api/v1/budgets/bot-hourly", headers=headers)).status_code == 204
            assert (await api.get("/api/v1/budgets/bot-hourly", headers=headers)).status_code == 404


async def wait_for_rules(tollway: InProcess) -> None:
    """The gateway's limits after the last write (what its refresh loop does within TOLLWAY_SPEND_REFRESH_S)."""
    assert tollway.runtime.spend is not None
    await tollway.runtime.spend.refresh()


async def test_a_burst_of_fifty_against_room_for_ten_admits_ten(tollway: InProcess) -> None:
    per_call = PROMPT + 5
    headers = {"authorization": f"Bearer {ADMIN}"}
    async with tollway.http() as api:
        created = await api.post(
            "/api/v1/budgets",
            headers=headers,
            json={
                "key": "burst",
                "scope": "consumer",
                "target": "burst",
                "kind": "tokens",
                "limit": str(10 * per_call + per_call - 1),
            },
        )
        assert created.status_code == 201
    await wait_for_rules(tollway)
    barrier = asyncio.Event()
    async with tollway.http2() as http, client(tollway, "burst-key", http) as burst:

        async def one(n: int) -> bool:
            await barrier.wait()
            try:
                await burst.chat.completions.create(model="demo", messages=chat(n), max_tokens=5)  # type: ignore[arg-type]
            except openai.RateLimitError:
                return False
            return True

        calls = [asyncio.create_task(one(n)) for n in range(50)]
        await asyncio.sleep(0)
        barrier.set()
        outcomes = await asyncio.gather(*calls)
    assert outcomes.count(True) == 10


async def test_cost_and_budget_headers_and_agent_budgets(tollway: InProcess) -> None:
    async with tollway.http() as raw:
        body = {"model": "demo", "messages": chat(1), "max_tokens": 10}
        answer = await raw.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer acme-key"})
        assert answer.status_code == 200
        # 18 input tokens at 0.0001 + 10 output at 0.001 on acme's plan; its daily budget of 0.05 has 0.0382 left
        assert (answer.headers["x-tollway-cost"], answer.headers["x-tollway-cost-currency"]) == ("0.0118", "USD")
        assert answer.headers["x-tollway-budget-remaining"] == "0.0382"
        assert answer.headers["x-tollway-budget-name"] == "acme-daily"
        bot = await raw.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer bot-secret-key"})
        # no plan: the provider cost in USD, 18 x 0.000001 + 10 x 0.00001
        assert (bot.headers["x-tollway-cost"], bot.headers["x-tollway-cost-currency"]) == ("0.000118", "USD")
        streamed = await raw.post(
            "/v1/chat/completions", json={**body, "stream": True}, headers={"authorization": "Bearer acme-key"}
        )
        assert ": x-tollway-cost 0.0118 USD\n\n" in streamed.text  # a stream's cost: its last SSE comment
        too_dear = await raw.post(
            "/v1/chat/completions",
            json=body,
            headers={"authorization": "Bearer acme-key", "x-tollway-budget": "0.001"},
        )
        assert too_dear.status_code == 429
        assert too_dear.json()["error"]["message"] == (
            "Limit reached: this request's budget (x-tollway-budget) allows 0.001, and the request may cost up to "
            "0.0118."
        )
        bad = await raw.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer acme-key", "x-tollway-budget": "lots"}
        )
        assert bad.status_code == 400
    async with tollway.http2() as http, client(tollway, "burst-key", http) as agent:  # no budget of its own
        task = {"x-tollway-task": "agent-run-7", "x-tollway-task-budget": "0.0003"}
        spent = 0
        stopped: openai.RateLimitError | None = None
        for step in range(10):  # a looping agent: its task budget stops it
            try:
                await agent.chat.completions.create(
                    model="demo",
                    messages=chat(step),  # type: ignore[arg-type]
                    max_tokens=10,
                    extra_headers=task,
                )
            except openai.RateLimitError as refused:
                stopped = refused
                break
            spent += 1
        assert stopped is not None
        assert "the budget of task 'agent-run-7' (x-tollway-task-budget) allows 0.0003" in str(stopped.body)
        assert spent == 2  # 2 x 0.000118 fit in 0.0003, a third does not


async def test_cost_estimate_matches_the_metered_cost_and_says_what_would_refuse(tollway: InProcess) -> None:
    auth = {"authorization": "Bearer acme-key"}
    body = {"model": "demo", "messages": chat(1), "max_tokens": 10}
    async with tollway.http() as raw:
        estimated = await raw.post("/v1/cost/estimate", json=body, headers=auth)
        assert estimated.status_code == 200
        answer = estimated.json()
        assert {k: answer[k] for k in ("model", "api", "cost", "providerCost", "allowed", "refusal")} == {
            "model": "demo",
            "api": "chat",
            "cost": {"min": "0.0018", "max": "0.0118", "currency": "USD"},
            "providerCost": {"min": "0.000018", "max": "0.000118", "currency": "USD"},
            "allowed": True,
            "refusal": None,
        }
        assert {
            (limit["name"], limit["limit"], limit["used"], limit["needed"], limit["fits"]) for limit in answer["limits"]
        } == {
            ("budget:acme-daily", "0.05", "0", "0.0118", True),
            ("entitlement:output-tokens", "1000", "0", "10", True),
        }
        called = await raw.post("/v1/chat/completions", json=body, headers=auth)
        assert called.headers["x-tollway-cost"] == answer["cost"]["max"]  # the estimate is what the call cost
        for n in range(2, 5):
            await raw.post("/v1/chat/completions", json={**body, "messages": chat(n)}, headers=auth)
        refused = (await raw.post("/v1/cost/estimate", json=body, headers=auth)).json()
        assert refused["allowed"] is False
        assert refused["refusal"].startswith(
            "Limit reached: the money budget 'acme-daily' of customer 'acme' allows 0.05"
        )
        messages = await raw.post(
            "/v1/cost/estimate?api=messages",
            json={"model": "demo", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]},
            headers=auth,
        )
        assert messages.status_code == 200
        assert messages.json()["api"] == "messages"
    stored = await tollway.runtime.metering.query("llm_requests", MeterQuery(subjects=("acme-corp",)))
    assert sum(row.value for row in stored) <= 4  # estimates meter nothing (only the 4 calls, once stored)
