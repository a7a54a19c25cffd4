"""Failover before the first byte, timeouts, and billing that stays exact whatever path a request took.

Two fake OpenAI upstreams on loopback ("east", "west") fail on command: a 500 or a 429 before any byte,
a hang before the first byte, a slow first token, a stream cut mid-way, a stream that goes silent. The
gateway runs in process from the composition root (SQLite); the official openai and anthropic SDKs are the
clients, with their own retries off so that the gateway's retries are what is tested. Every case checks
the event store: exactly one `llm.request` per client request, attributed to the target that served it,
and one zero-token `llm.attempt` per failed try.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.support.fake_upstream import FakeOpenAI, Reply
from tests.support.prometheus import prometheus_value
from tests.support.scenario import KEY, SUBJECT, usage_block
from tests.support.stored import StoredEvent, stored_events
from tollway.asgi import TollwayApp
from tollway.bootstrap import build_app, build_runtime
from tollway.config.loader import load_config
from tollway.metering.pipeline import UsagePipeline
from tollway.runtime.process import Runtime
from tollway.settings import Settings

MESSAGES: Any = [{"role": "user", "content": "Tell me a story"}]
FAST = {"first_byte_s": 1.0}  # a hang or a slow first token is given up after 1 s (0.3 s fired on a loaded machine)


@pytest.fixture(scope="module")
def east() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def west() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def config(east: FakeOpenAI, west: FakeOpenAI) -> dict[str, Any]:
    def provider(name: str, kind: str, base_url: str) -> dict[str, Any]:
        return {"name": name, "type": kind, "base_url": base_url, "api_key": "sk-upstream"}

    return {
        "providers": [
            provider("east", "openai", east.base_url),
            provider("west", "openai", west.base_url),
            provider("claude", "anthropic", east.base_url),  # never reached: it cannot serve /embeddings
        ],
        "models": [
            {
                "name": "duo",
                "targets": [{"provider": "east", "model": "gpt-4o"}, {"provider": "west", "model": "gpt-4o-mini"}],
                "timeouts": FAST,
            },
            {"name": "solo", "targets": [{"provider": "east", "model": "gpt-4o"}], "timeouts": FAST},
            {
                "name": "silent",
                "targets": [{"provider": "east", "model": "gpt-4o"}, {"provider": "west", "model": "gpt-4o-mini"}],
                "timeouts": {"idle_s": 0.3},
            },
            {
                "name": "again",
                "targets": [{"provider": "east", "model": "gpt-4o"}],
                "retry": {"max_attempts": 2, "backoff_initial_ms": 10, "backoff_max_ms": 20},
            },
            {
                "name": "window",
                "targets": [
                    {"provider": "east", "model": "gpt-4o", "context_window": 100},
                    {"provider": "west", "model": "gpt-4o-mini"},
                ],
            },
            {
                "name": "mixed",
                "targets": [{"provider": "claude", "model": "claude-3-5-haiku"}, {"provider": "west", "model": "emb"}],
            },
        ],
        "consumers": [{"username": SUBJECT, "keys": [KEY]}],
    }


@dataclass
class Tollway:
    runtime: Runtime
    app: TollwayApp
    http: httpx.AsyncClient
    database_url: str

    def _client(self) -> httpx2.AsyncClient:  # the SDKs are built on httpx2 (httpx's API); each closes its own
        return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.app), base_url="http://tollway")

    def openai(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url="http://tollway/v1", api_key=KEY, max_retries=0, http_client=self._client())

    def anthropic(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            base_url="http://tollway", api_key=KEY, max_retries=0, http_client=self._client()
        )

    async def events_of(self, request_id: str) -> list[StoredEvent]:
        """The stored events of one request, once the pipeline flushed."""
        pipeline = self.runtime.pipeline
        assert isinstance(pipeline, UsagePipeline)
        assert await pipeline.flush()
        return [e for e in stored_events(self.database_url) if e.request_id == request_id]


@pytest.fixture
async def tollway(tmp_path: Path, east: FakeOpenAI, west: FakeOpenAI) -> AsyncIterator[Tollway]:
    path = tmp_path / "tollway.yaml"
    path.write_text(json.dumps(config(east, west)))
    database_url = f"sqlite:///{tmp_path / 'tollway.db'}"
    settings = Settings(
        config=str(path),
        database_url=database_url,
        admin_token="tw-admin-0123456789abcdef",
        journal_dir=str(tmp_path / "journal"),
        billing_worker=False,
        flush_interval_s=60,  # flushed by the test
    )
    runtime = build_runtime(settings, load_config(path, {}))
    app = build_app(runtime)
    await runtime.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tollway") as http:
            yield Tollway(runtime, app, http, database_url)
    finally:
        await runtime.stop()
    left = east.drop_script() + west.drop_script()  # nothing scripted leaks into the next test
    assert left == 0, "a scripted reply was not used"


async def read_into(stream: openai.AsyncStream[ChatCompletionChunk], pieces: list[str]) -> None:
    """The streamed text, piece by piece, until the stream ends (or raises)."""
    async for chunk in stream:
        pieces.extend(choice.delta.content or "" for choice in chunk.choices)


def only_record(events: list[StoredEvent]) -> dict[str, Any]:
    (record,) = [e.data for e in events if e.type == "llm.request"]
    return record


def attempts(events: list[StoredEvent]) -> list[tuple[str, str, int | None, str, int]]:
    return [
        (e.data["provider"], e.data["upstream_model"], e.data["status_code"], e.data["cause"], e.data["tokens"])
        for e in events
        if e.type == "llm.attempt"
    ]


def billed(events: list[StoredEvent]) -> dict[str, int]:
    return {e.data["type"]: e.data["tokens"] for e in events if e.type == "llm.tokens"}


async def test_a_500_before_any_byte_is_served_by_the_next_target_and_billed_once(
    tollway: Tollway, east: FakeOpenAI, west: FakeOpenAI
) -> None:
    east.enqueue(Reply(status=500, body={"error": {"message": "boom", "type": "server_error"}}))
    west.enqueue(Reply(content="from west", usage=usage_block(12, 5)))
    async with tollway.openai() as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(model="duo", messages=MESSAGES)
    answer = raw.parse()
    assert answer.choices[0].message.content == "from west"
    assert (raw.headers["x-tollway-provider"], raw.headers["x-tollway-model"]) == ("west", "gpt-4o-mini")

    events = await tollway.events_of(raw.headers["x-request-id"])
    record = only_record(events)
    assert (record["provider"], record["upstream_model"], record["status_code"]) == ("west", "gpt-4o-mini", 200)
    assert (record["input_tokens"], record["output_tokens"], record["attempts"]) == (12, 5, 2)
    assert attempts(events) == [("east", "gpt-4o", 500, "status", 0)]
    assert billed(events) == {"input": 12, "output": 5}
    metrics = (await tollway.http.get("/metrics")).text
    assert prometheus_value(metrics, 'tollway_upstream_errors_total{provider="east",reason="500"}') == 1
    assert (
        prometheus_value(metrics, 'tollway_requests_total{route="/v1/chat/completions",model="duo",status="200"}') == 1
    )


async def test_a_429_with_retry_after_fails_over(tollway: Tollway, east: FakeOpenAI, west: FakeOpenAI) -> None:
    east.enqueue(
        Reply(status=429, body={"error": {"message": "slow down", "type": "rate_limit"}}, headers={"Retry-After": "7"})
    )
    west.enqueue(Reply(content="from west", usage=usage_block(3, 2)))
    async with tollway.openai() as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(model="duo", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "from west"
    events = await tollway.events_of(raw.headers["x-request-id"])
    assert only_record(events)["provider"] == "west"
    assert attempts(events) == [("east", "gpt-4o", 429, "status", 0)]


async def test_every_target_failing_answers_the_last_upstream_error_billed_once(
    tollway: Tollway, east: FakeOpenAI, west: FakeOpenAI
) -> None:
    east.enqueue(Reply(status=503, body={"error": {"message": "east is down", "type": "server_error"}}))
    west.enqueue(Reply(status=503, body={"error": {"message": "west is down", "type": "server_error"}}))
    async with tollway.openai() as sdk:
        with pytest.raises(openai.APIStatusError) as caught:
            await sdk.chat.completions.create(model="duo", messages=MESSAGES)
    assert caught.value.status_code == 503
    assert caught.value.message.endswith("west is down")
    events = await tollway.events_of(caught.value.response.headers["x-request-id"])
    record = only_record(events)
    assert (record["provider"], record["status_code"], record["input_tokens"]) == ("west", 503, 0)
    assert attempts(events) == [("east", "gpt-4o", 503, "status", 0)]
    assert billed(events) == {"input": 0, "output": 0}


async def test_a_hang_before_the_first_byte_fails_over_to_one_coherent_stream(
    tollway: Tollway, east: FakeOpenAI, west: FakeOpenAI
) -> None:
    east.enqueue(Reply(delay_s=2.5))  # no head at all within first_byte_s
    west.enqueue(Reply(content="one coherent answer", usage=usage_block(9, 3)))
    async with tollway.openai() as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="duo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in raw.parse()]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one coherent answer"
    assert raw.headers["x-tollway-provider"] == "west"
    events = await tollway.events_of(raw.headers["x-request-id"])
    record = only_record(events)
    assert (record["provider"], record["partial"], record["streamed"]) == ("west", False, True)
    assert (record["input_tokens"], record["output_tokens"]) == (9, 3)
    assert attempts(events) == [("east", "gpt-4o", None, "timeout", 0)]


async def test_a_slow_first_token_fails_over(tollway: Tollway, east: FakeOpenAI, west: FakeOpenAI) -> None:
    east.enqueue(Reply(first_chunk_delay_s=2.5))  # the head comes at once, the first event does not
    west.enqueue(Reply(content="quick", usage=usage_block(4, 1)))
    async with tollway.openai() as sdk:
        stream = await sdk.chat.completions.create(
            model="duo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "quick"


async def test_a_stream_cut_mid_way_is_never_restarted_and_is_billed_once_as_partial(
    tollway: Tollway, east: FakeOpenAI, west: FakeOpenAI
) -> None:
    east.enqueue(Reply(cut_after=3))  # role, "Hello", " from", then the connection is aborted
    west_calls = len(west.received)
    async with tollway.openai() as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(model="duo", messages=MESSAGES, stream=True)
        pieces: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            await read_into(raw.parse(), pieces)
    assert "".join(pieces) == "Hello from"
    assert "ended the stream before it was complete" in caught.value.message
    assert len(west.received) == west_calls, "no second stream was started"
    events = await tollway.events_of(raw.headers["x-request-id"])
    record = only_record(events)
    assert (record["provider"], record["partial"], record["status_code"]) == ("east", True, 200)
    assert attempts(events) == []


async def test_a_stream_silent_past_the_idle_timeout_ends_cut(
    tollway: Tollway, east: FakeOpenAI, west: FakeOpenAI
) -> None:
    east.enqueue(Reply(stream_pieces=["a", "b", "c"], chunk_delay_s=0.6))
    west_calls = len(west.received)
    async with tollway.openai() as sdk:
        stream = await sdk.chat.completions.create(model="silent", messages=MESSAGES, stream=True)
        pieces: list[str] = []
        with pytest.raises(openai.APIError):
            await read_into(stream, pieces)
    assert "".join(pieces) == ""  # the role chunk came, then nothing for longer than idle_s
    assert len(west.received) == west_calls
    metrics = (await tollway.http.get("/metrics")).text
    assert prometheus_value(metrics, 'tollway_upstream_errors_total{provider="east",reason="stream_timeout"}') == 1


async def test_a_timeout_is_a_504_in_the_openai_shape_billed_once(tollway: Tollway, east: FakeOpenAI) -> None:
    east.enqueue(Reply(delay_s=2.5))
    async with tollway.openai() as sdk:
        with pytest.raises(openai.APIStatusError) as caught:
            await sdk.chat.completions.create(model="solo", messages=MESSAGES)
    assert caught.value.status_code == 504
    body: Any = caught.value.body
    assert (body["type"], body["code"]) == ("api_error", "upstream_unavailable")
    events = await tollway.events_of(caught.value.response.headers["x-request-id"])
    record = only_record(events)
    assert (record["provider"], record["status_code"], record["input_tokens"]) == ("east", 504, 0)
    assert attempts(events) == []


async def test_a_timeout_is_a_504_in_the_anthropic_shape(tollway: Tollway, east: FakeOpenAI) -> None:
    east.enqueue(Reply(delay_s=2.5))
    async with tollway.anthropic() as sdk:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await sdk.messages.create(model="solo", max_tokens=50, messages=MESSAGES)
    assert caught.value.status_code == 504
    body: Any = caught.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "api_error"
    events = await tollway.events_of(caught.value.response.headers["x-request-id"])
    assert only_record(events)["status_code"] == 504


async def test_anthropic_clients_fail_over_too(tollway: Tollway, east: FakeOpenAI, west: FakeOpenAI) -> None:
    east.enqueue(Reply(status=502, body={"error": {"message": "bad gateway", "type": "server_error"}}))
    west.enqueue(Reply(content="translated from west", usage=usage_block(8, 4)))
    async with tollway.anthropic() as sdk:
        raw = await sdk.messages.with_raw_response.create(model="duo", max_tokens=50, messages=MESSAGES)
    message = await raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == "translated from west"
    assert raw.headers["x-tollway-provider"] == "west"
    events = await tollway.events_of(raw.headers["x-request-id"])
    record = only_record(events)
    assert (record["provider"], record["input_tokens"], record["output_tokens"]) == ("west", 8, 4)
    assert attempts(events) == [("east", "gpt-4o", 502, "status", 0)]


async def test_one_target_is_tried_again_after_a_backoff(tollway: Tollway, east: FakeOpenAI) -> None:
    east.enqueue(Reply(status=503, body={"error": {"message": "busy", "type": "server_error"}}), Reply(content="2nd"))
    async with tollway.openai() as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(model="again", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "2nd"
    events = await tollway.events_of(raw.headers["x-request-id"])
    assert only_record(events)["status_code"] == 200
    assert attempts(events) == [("east", "gpt-4o", 503, "status", 0)]


async def test_a_target_that_cannot_take_the_request_is_skipped(tollway: Tollway, west: FakeOpenAI) -> None:
    # Anthropic has no embeddings API: that target is skipped without a network call.
    async with tollway.openai() as sdk:
        raw = await sdk.embeddings.with_raw_response.create(model="mixed", input="hello")
    assert len(raw.parse().data) == 1
    assert raw.headers["x-tollway-provider"] == "west"
    events = await tollway.events_of(raw.headers["x-request-id"])
    assert only_record(events)["provider"] == "west"
    assert attempts(events) == [("claude", "claude-3-5-haiku", None, "skipped", 0)]


async def test_a_prompt_over_a_targets_context_window_goes_to_the_next(tollway: Tollway, west: FakeOpenAI) -> None:
    west.enqueue(Reply(content="a long read", usage=usage_block(260, 3)))
    long_prompt: Any = [{"role": "user", "content": "word " * 200}]  # 1,000 characters: about 256 tokens by estimate
    async with tollway.openai() as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(model="window", messages=long_prompt)
    assert raw.headers["x-tollway-provider"] == "west"
    events = await tollway.events_of(raw.headers["x-request-id"])
    assert only_record(events)["input_tokens"] == 260
    assert attempts(events) == [("east", "gpt-4o", None, "skipped", 0)]
