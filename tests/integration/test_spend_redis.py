"""Several gateway processes, one limit: counters in Redis (a key prefix of the test's own, never FLUSHALL).

Two `tollway serve` processes on one PostgreSQL database and one Redis: a barrier-released burst of 50 calls
split across them against a budget with room for 10 admits 10, and a burst of 12 against a rate limit of 4
requests an hour admits 4; deleting every counter key (a Redis flush of
the test's prefix) and calling again does not reset the budget (it is seeded again from the metered usage).
Redis taken down (or stalled: connected, never answering) mid-test: each of several concurrent calls is refused
with 503 (fail-closed) or let through (fail-open) within the timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from tests.conftest import REDIS_URL, delete_prefix
from tests.support.in_process import in_process
from tests.support.net import wait_until
from tests.support.tcp_proxy import TcpProxy
from tests.support.tollway_process import TollwayProcess
from tollway.gateway.providers.simulator import prompt_tokens

KEY = "burst-secret-key"
PACED_KEY = "paced-secret-key"


def chat(n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Task {n:03d}: summarise the tide tables for the harbour."}]


PER_CALL = prompt_tokens({"messages": chat(0)}) + 5  # the worst case of one call with max_tokens=5 (exact)


def config(limit: int) -> dict[str, Any]:
    return {
        "providers": [{"name": "local", "type": "simulator"}],
        "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
        "consumers": [{"username": "burst", "keys": [KEY]}, {"username": "paced", "keys": [PACED_KEY]}],
        "budgets": [{"key": "burst-day", "consumer": "burst", "kind": "tokens", "limit": str(limit), "window": "day"}],
        "rate_limits": [{"key": "paced-4", "consumer": "paced", "metric": "requests", "limit": "4", "window": "hour"}],
    }


@pytest.fixture
def pair(tmp_path: Path, postgres_url: str, redis_prefix: str) -> Iterator[list[TollwayProcess]]:
    env = {
        "TOLLWAY_REDIS_URL": REDIS_URL,
        "TOLLWAY_SPEND_REDIS_PREFIX": redis_prefix,
        "TOLLWAY_SPEND_REDIS_TIMEOUT_S": "2",
    }
    processes: list[TollwayProcess] = []
    try:
        for name in ("a", "b"):  # one after the other: the second finds the file's budget applied
            workdir = tmp_path / name
            workdir.mkdir()
            processes.append(
                TollwayProcess(workdir, config(11 * PER_CALL - 1), database_url=postgres_url, env=env).start()
            )
        yield processes
    finally:
        for process in processes:
            process.stop()


async def test_two_processes_share_one_limit_and_a_flush_does_not_reset_it(
    pair: list[TollwayProcess], redis_prefix: str
) -> None:
    clients = [openai.AsyncOpenAI(base_url=p.base_url + "/v1", api_key=KEY, max_retries=0) for p in pair]
    barrier = asyncio.Event()

    async def one(n: int) -> bool:
        await barrier.wait()
        try:
            await clients[n % 2].chat.completions.create(model="demo", messages=chat(n), max_tokens=5)  # type: ignore[arg-type]
        except openai.RateLimitError:
            return False
        return True

    try:
        calls = [asyncio.create_task(one(n)) for n in range(50)]
        await asyncio.sleep(0)
        barrier.set()
        outcomes = await asyncio.gather(*calls)
        assert outcomes.count(True) == 10  # room for 10 worst cases; estimates are exact on the simulator
        wait_until(lambda: sum(pair[0].tokens_by_type("burst").values()) == 10 * PER_CALL, timeout_s=20)
        with redis.Redis.from_url(REDIS_URL) as direct:
            assert delete_prefix(direct, redis_prefix) >= 1  # every counter of this test gone
        with pytest.raises(openai.RateLimitError) as refused:
            await clients[1].chat.completions.create(model="demo", messages=chat(99), max_tokens=5)  # type: ignore[arg-type]
        assert f"the tokens budget 'burst-day' of consumer 'burst' allows {11 * PER_CALL - 1} per day" in str(
            refused.value.body
        )
        assert f"{10 * PER_CALL} used" in str(refused.value.body)  # seeded again from what was metered
        # a rate limit is one limit across the processes too: 4 requests an hour, a burst of 12 over both
        paced = [openai.AsyncOpenAI(base_url=p.base_url + "/v1", api_key=PACED_KEY, max_retries=0) for p in pair]
        clients += paced
        gate = asyncio.Event()

        async def call_paced(n: int) -> bool:
            await gate.wait()
            try:
                await paced[n % 2].chat.completions.create(model="demo", messages=chat(n), max_tokens=5)  # type: ignore[arg-type]
            except openai.RateLimitError:
                return False
            return True

        tasks = [asyncio.create_task(call_paced(n)) for n in range(12)]
        await asyncio.sleep(0)
        gate.set()
        assert (await asyncio.gather(*tasks)).count(True) == 4
        with pytest.raises(openai.RateLimitError) as limited:
            await paced[0].chat.completions.create(model="demo", messages=chat(0), max_tokens=5)  # type: ignore[arg-type]
        assert limited.value.response.headers["x-tollway-limit"] == "rate:paced-4"
        assert limited.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    finally:
        for client in clients:
            await client.close()


@pytest.mark.parametrize(("failure", "outage"), [("closed", "down"), ("open", "down"), ("closed", "stall")])
async def test_redis_down_fails_as_configured(tmp_path: Path, redis_prefix: str, failure: str, outage: str) -> None:
    proxy = TcpProxy("127.0.0.1", 6379).up()
    try:
        async with (
            in_process(
                tmp_path,
                config(1000),
                redis_url=f"redis://127.0.0.1:{proxy.port}/0",
                spend_redis_prefix=redis_prefix,
                spend_redis_timeout_s=0.2,
                spend_redis_failure=failure,
            ) as tollway,
            tollway.http() as http,
        ):
            body = {"model": "demo", "messages": chat(1), "max_tokens": 5}
            headers = {"authorization": f"Bearer {KEY}"}
            assert (await http.post("/v1/chat/completions", json=body, headers=headers)).status_code == 200
            proxy.down() if outage == "down" else proxy.stall()
            started = time.monotonic()
            answers = await asyncio.gather(
                *(http.post("/v1/chat/completions", json=body, headers=headers) for _ in range(8))
            )
            assert time.monotonic() - started < 2  # bounded: never hangs on Redis
            for answer in answers:  # each waiter of a shared script gets the configured verdict
                if failure == "closed":
                    assert answer.status_code == 503
                    assert answer.json()["error"]["code"] == "limits_unavailable"
                else:
                    assert answer.status_code == 200
            if outage == "stall":
                proxy.down()
                proxy.resume()
            proxy.up()
            # back within a few calls: under load the first may spend its 0.2 s replacing a connection the
            # outage left dead (redis-py finds it on checkout) and fail as configured
            statuses = []
            for _ in range(10):
                statuses.append((await http.post("/v1/chat/completions", json=body, headers=headers)).status_code)
                if statuses[-1] == 200:
                    break
                await asyncio.sleep(0.2)
            assert statuses[-1] == 200, statuses
    finally:
        proxy.close()
