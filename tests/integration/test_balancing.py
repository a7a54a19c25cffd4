"""Balancing and breakers end to end: two fake upstreams on loopback, the official openai SDK, Tollway in process.

Every request leaves exactly one `llm.request` record in the event store, attributed to the target that
served it, whichever targets were tried or skipped on the way.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from tests.support.fake_upstream import FakeOpenAI, Reply
from tests.support.prometheus import prometheus_value
from tests.support.usage_events import request_events
from tollway.bootstrap import build_app, build_runtime
from tollway.clock import FrozenClock
from tollway.config.loader import load_config
from tollway.runtime.process import Runtime
from tollway.settings import Settings

KEY = "acme-secret-key"
MESSAGES: list[Any] = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    first, second = FakeOpenAI().start(), FakeOpenAI().start()
    yield first, second
    first.stop()
    second.stop()


def two_target_config(first: FakeOpenAI, second: FakeOpenAI, model: dict[str, Any]) -> dict[str, Any]:
    return {
        "providers": [
            {"name": "first", "type": "openai", "api_key": "sk-first", "base_url": first.base_url},
            {"name": "second", "type": "openai", "api_key": "sk-second", "base_url": second.base_url},
        ],
        "models": [
            {
                "name": "smart",
                "targets": [{"provider": "first", "model": "gpt-4o"}, {"provider": "second", "model": "gpt-4o"}],
                **model,
            }
        ],
        "consumers": [{"username": "acme-corp", "keys": [KEY]}],
    }


@dataclass
class Tollway:
    runtime: Runtime
    http: httpx.AsyncClient
    sdk: openai.AsyncOpenAI
    claude: anthropic.AsyncAnthropic
    clock: FrozenClock
    config_path: Path

    async def ask(self) -> str:
        answer = await self.sdk.chat.completions.create(model="smart", messages=MESSAGES)
        return answer.choices[0].message.content or ""

    async def metric(self, selector: str) -> float:
        return prometheus_value((await self.http.get("/metrics")).text, selector)


@asynccontextmanager
async def tollway(directory: Path, config: dict[str, Any]) -> AsyncIterator[Tollway]:
    config_path = directory / "tollway.yaml"
    config_path.write_text(json.dumps(config))
    settings = Settings(
        config=str(config_path),
        database_url=f"sqlite:///{directory / 'tollway.db'}",
        journal_dir=str(directory / "journal"),
        billing_worker=False,
    )
    clock = FrozenClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    runtime = build_runtime(settings, load_config(config_path, {}), clock)
    app = build_app(runtime)
    await runtime.start()
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tollway") as http,
            httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app)) as sdk_http,
            openai.AsyncOpenAI(base_url="http://tollway/v1", api_key=KEY, http_client=sdk_http, max_retries=0) as sdk,
            anthropic.AsyncAnthropic(
                base_url="http://tollway", api_key=KEY, http_client=sdk_http, max_retries=0
            ) as claude,
        ):
            yield Tollway(runtime, http, sdk, claude, clock, config_path)
    finally:
        await runtime.stop()


async def test_weighted_split_follows_the_weights_with_one_record_per_request(
    workdir: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    first, second = upstreams
    config = two_target_config(first, second, {"balance": "weighted"})
    config["models"][0]["targets"][0]["weight"] = 3
    async with tollway(workdir, config) as gateway:
        for _ in range(120):
            assert await gateway.ask() == "Hello from the fake upstream."
        assert await gateway.metric('tollway_target_attempts_total{provider="first",model="gpt-4o"}') == 90
    assert (len(first.received), len(second.received)) == (90, 30)
    records = request_events(workdir / "tollway.db")
    assert Counter(r["provider"] for r in records) == {"first": 90, "second": 30}


async def test_weighted_split_through_the_anthropic_sdk(
    workdir: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    first, second = upstreams
    config = two_target_config(first, second, {"balance": "weighted"})
    config["models"][0]["targets"][1]["weight"] = 3
    async with tollway(workdir, config) as gateway:
        for _ in range(40):
            answer = await gateway.claude.messages.create(model="smart", max_tokens=10, messages=MESSAGES)
            assert answer.content[0].type == "text"
    assert (len(first.received), len(second.received)) == (10, 30)
    records = request_events(workdir / "tollway.db")
    assert Counter(r["provider"] for r in records) == {"first": 10, "second": 30}


async def test_lowest_latency_moves_off_a_slow_first_token_and_back_after_recovery(
    workdir: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    first, second = upstreams
    balance = {"strategy": "lowest_latency", "explore": 0.05, "probe_every": 8, "ewma_alpha": 0.5, "seed": 3}
    async with tollway(workdir, two_target_config(first, second, {"balance": balance})) as gateway:

        async def served(requests: int) -> tuple[int, int]:
            before = (len(first.received), len(second.received))
            for _ in range(requests):
                await gateway.ask()
            return len(first.received) - before[0], len(second.received) - before[1]

        first.default = Reply(delay_s=0.25)  # first is slow to its first byte
        await served(12)  # both sampled, averages settle
        slow_first = await served(20)
        assert slow_first[1] >= 14, slow_first
        first.default, second.default = Reply(), Reply(delay_s=0.25)  # first recovers, second slows down
        await served(15)
        recovered = await served(20)
        assert recovered[0] >= 14, recovered
    assert len(request_events(workdir / "tollway.db")) == 67


async def test_breaker_skips_a_dead_target_probes_it_after_the_cool_down_and_closes(
    workdir: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    dead, live = upstreams
    dead.default = Reply(status=500, body={"error": {"message": "down", "type": "server_error"}})
    config = two_target_config(dead, live, {"breaker": {"failures": 2, "cooldown_s": 30}})
    async with tollway(workdir, config) as gateway:
        for _ in range(10):
            assert await gateway.ask() == "Hello from the fake upstream."
        assert len(dead.received) == 2, "open after two failures: skipped without a network call"
        assert await gateway.metric('tollway_target_breaker_state{provider="first",model="gpt-4o"}') == 2
        assert (await gateway.http.get("/readyz")).json() == {"status": "ready"}

        gateway.clock.advance(timedelta(seconds=30))
        await gateway.ask()  # the one probe fails: failed over, open again
        await gateway.ask()
        assert len(dead.received) == 3

        assert await gateway.runtime.reload()  # an unchanged target keeps its breaker across a reload
        await gateway.ask()
        assert len(dead.received) == 3

        dead.default = Reply()
        gateway.clock.advance(timedelta(seconds=30))
        await gateway.ask()  # the probe succeeds: closed
        await gateway.ask()
        assert len(dead.received) == 5
        assert await gateway.metric('tollway_target_breaker_state{provider="first",model="gpt-4o"}') == 0
    records = request_events(workdir / "tollway.db")
    assert len(records) == 15
    assert Counter(r["provider"] for r in records) == {"second": 13, "first": 2}


async def test_health_checks_open_the_breaker_of_a_dead_target_without_client_traffic(
    workdir: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    dead, live = upstreams
    dead.default = Reply(status=500, body={"error": {"message": "down", "type": "server_error"}})
    model = {"breaker": {"failures": 1, "cooldown_s": 30}, "health_check": {"interval_s": 1, "timeout_s": 1}}
    async with tollway(workdir, two_target_config(dead, live, model)) as gateway:
        state = 'tollway_target_breaker_state{provider="first",model="gpt-4o"}'
        for _ in range(100):  # the first check is due one interval after the start
            if await gateway.metric(state) == 2:
                break
            await asyncio.sleep(0.05)
        assert await gateway.metric(state) == 2
        assert dead.received[0].body == {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 1,
        }
        await gateway.ask()

        def asked(fake: FakeOpenAI) -> int:  # client requests, not health checks
            return sum(1 for received in fake.received if received.body["messages"] == MESSAGES)

        assert (asked(dead), asked(live)) == (0, 1), "open: the client request went to the live target only"
    assert len(request_events(workdir / "tollway.db")) == 1, "health checks are not usage"


async def test_no_usable_target_fails_fast_with_503_in_the_callers_shape(
    workdir: Path, upstreams: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    first, second = upstreams
    for fake in upstreams:
        fake.default = Reply(status=503, body={"error": {"message": "overloaded", "type": "server_error"}})
    config = two_target_config(first, second, {"breaker": {"failures": 1, "cooldown_s": 30}})
    async with tollway(workdir, config) as gateway:
        with pytest.raises(openai.InternalServerError):
            await gateway.ask()  # both tried, both failed: both open
        tried = len(first.received) + len(second.received)
        with pytest.raises(openai.InternalServerError) as raised:
            await gateway.ask()
        assert raised.value.status_code == 503
        assert isinstance(raised.value.body, dict)
        assert raised.value.body["code"] == "no_usable_target"
        with pytest.raises(anthropic.InternalServerError) as refused:
            await gateway.claude.messages.create(model="smart", max_tokens=10, messages=MESSAGES)
        assert refused.value.status_code == 503
        assert isinstance(refused.value.body, dict)
        assert refused.value.body["type"] == "error"
        assert len(first.received) + len(second.received) == tried, "no network call"
        assert (await gateway.http.get("/readyz")).json() == {
            "status": "degraded",
            "models_without_usable_target": ["smart"],
        }
    assert len(request_events(workdir / "tollway.db")) == 1, "the refused requests reached no upstream"
