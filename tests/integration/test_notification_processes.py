"""Issue 23's burst: thresholds at 50/80/100% fire exactly once each under a burst of 50 concurrent requests
across two processes. Two `tollway serve` processes on one PostgreSQL database, each running its notification
worker (detection every 0.2 s, so both look while the usage lands); a soft metered entitlement of 100 output
tokens; 50 chat calls of 3 output tokens each (150: every threshold crossed) released at once through the
official openai SDK, split across both processes; a loopback receiver verifies each delivery with the
standardwebhooks library. The one test of notifications that starts `tollway serve` processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from tests.support.net import wait_until
from tests.support.tollway_process import TollwayProcess
from tests.support.webhook_receiver import Receiver

KEY = "burst-notify-key"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CALLS = 50
OUTPUT_PER_CALL = 3
LIMIT = 100


def config(receiver_url: str) -> dict[str, Any]:
    return {
        "providers": [{"name": "local", "type": "simulator"}],
        "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
        "consumers": [{"username": "acme-corp", "keys": [KEY]}],
        "features": [{"key": "output-tokens", "meter": "llm_tokens", "filters": {"type": "output"}}],
        "plans": [
            {
                "key": "soft",
                "name": "Soft",
                "currency": "USD",
                "billing_cadence": "P1M",
                "rate_cards": [
                    {
                        "feature": "output-tokens",
                        "price": {"type": "unit", "amount": "0.00001"},
                        "entitlement": {"type": "metered", "limit": str(LIMIT), "hard": False},
                    }
                ],
            }
        ],
        "customers": [{"key": "acme", "name": "Acme", "usage_from": ["acme-corp"], "subscription": {"plan": "soft"}}],
        "notifications": {
            "channels": [{"name": "ops", "url": receiver_url, "signing_secret": SECRET}],
            "rules": [
                {
                    "name": "tokens",
                    "type": "entitlements.balance.threshold",
                    "channels": ["ops"],
                    "features": ["output-tokens"],
                    "thresholds": [
                        {"value": 50, "type": "PERCENT"},
                        {"value": 80, "type": "PERCENT"},
                        {"value": 100, "type": "PERCENT"},
                    ],
                }
            ],
        },
    }


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(secret=SECRET) as found:
        yield found


@pytest.fixture
def pair(tmp_path: Path, postgres_url: str, receiver: Receiver) -> Iterator[list[TollwayProcess]]:
    env = {
        "TOLLWAY_WEBHOOK_ALLOW_PRIVATE": "1",
        "TOLLWAY_BALANCE_INTERVAL_S": "0.2",
        "TOLLWAY_NOTIFICATION_INTERVAL_S": "0.1",
        "TOLLWAY_BILLING_INTERVAL_S": "3600",
    }
    processes: list[TollwayProcess] = []
    try:
        for name in ("a", "b"):  # one after the other: the second finds the file's catalog applied
            workdir = tmp_path / name
            workdir.mkdir()
            processes.append(TollwayProcess(workdir, config(receiver.url), database_url=postgres_url, env=env).start())
        yield processes
    finally:
        for process in processes:
            process.stop()


def chat(n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Call {n:02d}: tell me a long story about a lighthouse keeper."}]


async def test_thresholds_fire_exactly_once_each_under_a_burst_across_two_processes(
    pair: list[TollwayProcess], receiver: Receiver
) -> None:
    clients = [openai.AsyncOpenAI(base_url=p.base_url + "/v1", api_key=KEY, max_retries=0) for p in pair]
    barrier = asyncio.Event()

    async def one(n: int) -> int:
        await barrier.wait()
        reply = await clients[n % 2].chat.completions.create(
            model="demo",
            messages=chat(n),  # type: ignore[arg-type]
            max_tokens=OUTPUT_PER_CALL,
        )
        assert reply.usage is not None
        return reply.usage.completion_tokens

    try:
        calls = [asyncio.create_task(one(n)) for n in range(CALLS)]
        await asyncio.sleep(0)
        barrier.set()
        assert sum(await asyncio.gather(*calls)) == CALLS * OUTPUT_PER_CALL
    finally:
        for client in clients:
            await client.close()
    stored = CALLS * OUTPUT_PER_CALL
    wait_until(lambda: pair[1].tokens_by_type("acme-corp").get("output") == stored, timeout_s=30)
    wait_until(lambda: len(receiver.snapshot()) >= 3, timeout_s=30)
    # every usage is stored and both workers have looked many times since: nothing more may come
    settled = time.monotonic() + 1.5  # several 0.2 s rounds of each process
    wait_until(lambda: time.monotonic() >= settled, timeout_s=5)
    got = receiver.snapshot()
    assert len(got) == 3, [orjson.loads(g.body)["data"].get("threshold") for g in got]
    assert all(g.verified for g in got), [g.error for g in got]
    assert all(g.status == 200 for g in got)
    assert len({g.headers["webhook-id"] for g in got}) == 3
    bodies = [orjson.loads(g.body) for g in got]
    assert {b["type"] for b in bodies} == {"entitlements.balance.threshold"}
    assert sorted(b["data"]["threshold"]["value"] for b in bodies) == [50, 80, 100]
    assert {b["data"]["customer"]["key"] for b in bodies} == {"acme"}
    with pair[0].admin() as admin:
        listed = admin.get("/api/v1/notification/events", params={"pageSize": 100}).json()
    assert listed["totalCount"] == 3
