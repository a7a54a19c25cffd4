from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson

from tollway.clock import FrozenClock
from tollway.gateway.providers.base import UpstreamRequest
from tollway.gateway.providers.simulator import SimulatorProvider, count_tokens
from tollway.gateway.streaming import ChatStreamTracker, SSEFramer
from tollway.metering.llm import LlmCall, TokenPrice, TokenUsage, llm_call_events

CLOCK = FrozenClock(datetime(2026, 11, 23, tzinfo=UTC))


def request(stream: bool, **extra: object) -> UpstreamRequest:
    payload = {"model": "demo", "messages": [{"role": "user", "content": "Hello, world!"}], "stream": stream, **extra}
    return UpstreamRequest("/chat/completions", orjson.dumps(payload), payload, stream, "r1")


def test_tokenizer() -> None:
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("") == 0


async def test_simulator_is_deterministic_and_counts_real_tokens() -> None:
    simulator = SimulatorProvider("local", clock=CLOCK, tokens_per_second=0, reply_tokens=24)
    first = orjson.loads(await (await simulator.send(request(False))).read())
    second = orjson.loads(await (await simulator.send(request(False))).read())
    assert first["id"] != second["id"]  # unique per response, as real providers do
    assert first["id"].startswith("chatcmpl-")
    assert {k: v for k, v in first.items() if k != "id"} == {k: v for k, v in second.items() if k != "id"}
    usage = first["usage"]
    assert usage["prompt_tokens"] == 3 + 3 + 4
    assert usage["completion_tokens"] == count_tokens(first["choices"][0]["message"]["content"]) == 24


async def test_simulator_stream_reports_the_same_usage() -> None:
    simulator = SimulatorProvider("local", clock=CLOCK, tokens_per_second=0, reply_tokens=10)
    unary = orjson.loads(await (await simulator.send(request(False, max_tokens=5))).read())
    response = await simulator.send(request(True, max_tokens=5, stream_options={"include_usage": True}))
    tracker, framer = ChatStreamTracker(client_wants_usage=True), SSEFramer()
    async for chunk in response.iter_chunks():
        for event in framer.feed(chunk):
            tracker.relay(event)
    assert tracker.done
    assert tracker.usage == TokenUsage(input=unary["usage"]["prompt_tokens"], output=5)
    assert unary["choices"][0]["finish_reason"] == "length"
    assert tracker.content_chunks == 5


async def test_simulator_reasoning_and_cache() -> None:
    simulator = SimulatorProvider("local", clock=CLOCK, tokens_per_second=0, reply_tokens=4)
    long = {"model": "demo", "messages": [{"role": "user", "content": "word " * 1100}], "reasoning_effort": "low"}
    req = UpstreamRequest("/chat/completions", b"", long, False, "r")
    first = orjson.loads(await (await simulator.send(req)).read())["usage"]
    again = orjson.loads(await (await simulator.send(req)).read())["usage"]
    assert first["prompt_tokens_details"]["cached_tokens"] == 0
    assert again["prompt_tokens_details"]["cached_tokens"] == (again["prompt_tokens"] // 128) * 128
    assert again["completion_tokens_details"]["reasoning_tokens"] == 16
    assert again["completion_tokens"] == 4 + 16


def test_llm_events_per_token_type_with_cost() -> None:
    call = LlmCall(
        request_id="req_1",
        subject="acme",
        time=CLOCK.now(),
        model="gpt-4o",
        upstream_model="gpt-4o-x",
        provider="openai",
        route="/v1/chat/completions",
        status_code=200,
        streamed=True,
        usage=TokenUsage(input=176, output=300, cache_read=1024, reasoning=128),
        price=TokenPrice(input=Decimal("0.0000025"), output=Decimal("0.00001"), cache_read=Decimal("0.00000125")),
    )
    events = llm_call_events(call)
    by_id = {e.id: e for e in events}
    assert set(by_id) == {"req_1:input", "req_1:output", "req_1:cache_read", "req_1:request"}
    assert by_id["req_1:input"].data["tokens"] == 176
    assert by_id["req_1:output"].data["reasoning_tokens"] == 128
    assert by_id["req_1:cache_read"].data["cost_usd"] == "0.00128"
    assert by_id["req_1:request"].type == "llm.request"
    assert by_id["req_1:request"].data["cost_usd"] == "0.00472"  # 0.00044 + 0.003 + 0.00128
    assert all(e.subject == "acme" and e.source == "tollway/gateway" for e in events)


def test_failed_call_has_zero_tokens_not_invented_ones() -> None:
    call = LlmCall(
        request_id="r",
        subject="a",
        time=CLOCK.now(),
        model="m",
        upstream_model="m",
        provider="p",
        route="/v1/chat/completions",
        status_code=502,
        streamed=False,
        usage=None,
    )
    events = llm_call_events(call)
    assert sorted(e.id for e in events) == ["r:input", "r:output", "r:request"]
    assert all(e.data.get("tokens", 0) == 0 for e in events)
    assert all(e.data["status_code"] == 502 for e in events)


def test_call_record_round_trips_and_expands_to_the_same_events() -> None:
    from tollway.metering.llm import call_record, llm_event_count
    from tollway.metering.records import decode_record

    call = LlmCall(
        request_id="req_9",
        subject="acme",
        time=CLOCK.now(),
        model="gpt-4o",
        upstream_model="gpt-4o-x",
        provider="openai",
        route="/v1/chat/completions",
        status_code=200,
        streamed=True,
        usage=TokenUsage(input=1, output=2, cache_read=3, cache_write=4, reasoning=1),
        partial=True,
        estimated=False,
        price=TokenPrice(input=Decimal("0.0000025"), output=Decimal("0.00001"), cache_write=Decimal("0.000003")),
    )
    assert decode_record(call_record(call)) == llm_call_events(call)
    assert llm_event_count(call) == len(llm_call_events(call)) == 5
    failed = LlmCall(
        request_id="r", subject="a", time=CLOCK.now(), model="m", upstream_model="m", provider="p",
        route="/v1/embeddings", status_code=502, streamed=False, usage=None,
    )  # fmt: skip
    assert decode_record(call_record(failed)) == llm_call_events(failed)
    assert llm_event_count(failed) == 3


def test_decode_record_refuses_garbage() -> None:
    import pytest

    from tollway.metering.records import decode_record

    for line in (b"{not json", b"[]", b'{"record": "llm.call"}', b'{"id": 1}'):
        with pytest.raises(ValueError, match="unreadable"):
            decode_record(line)
