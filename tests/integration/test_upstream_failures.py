"""Streams that end early and upstreams that fail: exactly one usage record each, never invented tokens.

A client that hangs up mid-stream: the gateway drains the upstream to its usage chunk, so the record
is partial but carries the real usage. An upstream that cuts the stream or reports no usage: the
record is estimated. An upstream error: the record carries the status code and zero tokens.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.support.fake_upstream import FakeOpenAI, Reply
from tests.support.net import free_port, wait_until
from tests.support.scenario import KEY, client, config_for, prometheus_value, usage_block
from tests.support.stored import StoredEvent, stored_events, tokens_by_type
from tests.support.tollway_process import TollwayProcess

MESSAGES: Any = [{"role": "user", "content": "Tell me a story"}]
# The documented estimate of this prompt (docs/architecture.md, "Disconnects and cuts"):
# 3 + (3 + ceil(15 characters / 4)) = 10.
PROMPT_ESTIMATE = 10


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def sdk(gateway: TollwayProcess) -> Iterator[openai.OpenAI]:
    with client(gateway) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake: FakeOpenAI) -> Iterator[TollwayProcess]:
    workdir = tmp_path_factory.mktemp("failures")
    nobody_listens = f"http://127.0.0.1:{free_port()}/v1"
    process = TollwayProcess(workdir, config_for(fake, gone=nobody_listens)).start()
    yield process
    process.stop()


def database(gateway: TollwayProcess) -> str:
    return gateway.env["TOLLWAY_DATABASE_URL"]


def records_of(gateway: TollwayProcess, request_id: str, expected_events: int = 3) -> list[StoredEvent]:
    """The stored events of one call, once its `llm.request` event (written last) is there."""
    found: list[StoredEvent] = []

    def stored() -> bool:
        found[:] = [e for e in stored_events(database(gateway)) if e.request_id == request_id]
        return any(e.type == "llm.request" for e in found)

    wait_until(stored, timeout_s=15)
    assert len(found) == expected_events
    assert len({e.id for e in found}) == expected_events
    return found


def request_record(events: list[StoredEvent]) -> dict[str, Any]:
    (record,) = [e.data for e in events if e.type == "llm.request"]
    return record


def test_client_disconnect_mid_stream_records_real_usage_once_marked_partial(
    gateway: TollwayProcess, fake: FakeOpenAI
) -> None:
    usage = usage_block(812, 120, cached=512, reasoning=40)
    fake.enqueue(Reply(usage=usage, stream_pieces=[f"w{i}" for i in range(30)], chunk_delay_s=0.03))
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    with (
        httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {KEY}"}) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        received = []
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(line)
            if len(received) == 3:
                break  # hang up: leaving the blocks closes the connection mid-stream
    assert "[DONE]" not in "".join(received)

    events = records_of(gateway, request_id, expected_events=4)
    record = request_record(events)
    assert record["partial"] is True
    assert record["estimated"] is False, "the gateway drained the upstream to its usage chunk"
    assert record["streamed"] is True
    assert record["status_code"] == 200
    assert tokens_by_type(events) == {"input": 300, "cache_read": 512, "output": 120}
    assert record["reasoning_tokens"] == 40
    metrics = httpx.get(gateway.base_url + "/metrics").text
    assert prometheus_value(metrics, 'tollway_requests_total{route="/v1/chat/completions",model="gpt-4o",status="499"}')


def test_upstream_cut_mid_stream_records_one_estimated_partial_call(
    gateway: TollwayProcess, sdk: openai.OpenAI, fake: FakeOpenAI
) -> None:
    # Events: role, "Hello", " from", then the connection is aborted.
    fake.enqueue(Reply(cut_after=3))
    raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, stream=True)
    request_id = raw.headers["x-request-id"]
    pieces: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        pieces.extend(choice.delta.content or "" for chunk in raw.parse() for choice in chunk.choices)
    assert "".join(pieces) == "Hello from"
    assert "ended the stream before it was complete" in caught.value.message

    events = records_of(gateway, request_id)
    record = request_record(events)
    assert record["partial"] is True
    assert record["estimated"] is True
    assert record["status_code"] == 200
    assert tokens_by_type(events) == {"input": PROMPT_ESTIMATE, "output": 2}  # two content chunks were streamed


def test_stream_without_usage_chunk_is_estimated(gateway: TollwayProcess, sdk: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply(send_usage_chunk=False))
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake upstream."
    assert all(c.usage is None for c in chunks)

    events = records_of(gateway, raw.headers["x-request-id"])
    record = request_record(events)
    assert record["estimated"] is True
    assert record["partial"] is False, "the answer itself was complete"
    assert tokens_by_type(events) == {"input": PROMPT_ESTIMATE, "output": 5}  # five content chunks


@pytest.mark.parametrize(
    ("reply", "status", "error_class"),
    [
        (
            Reply(
                status=429,
                body={"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": None}},
            ),
            429,
            openai.RateLimitError,
        ),
        (Reply(status=500, body=b"upstream exploded", content_type="text/plain"), 500, openai.InternalServerError),
    ],
    ids=["429", "500-plain-text"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_upstream_error_is_recorded_with_its_status_and_no_tokens(
    gateway: TollwayProcess,
    sdk: openai.OpenAI,
    fake: FakeOpenAI,
    reply: Reply,
    status: int,
    error_class: type[openai.APIStatusError],
    stream: bool,
) -> None:
    fake.enqueue(reply)
    with pytest.raises(error_class) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=stream)
    assert caught.value.status_code == status
    error = caught.value.response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]

    events = records_of(gateway, caught.value.response.headers["x-request-id"])
    record = request_record(events)
    assert record["status_code"] == status
    assert record["estimated"] is False
    assert tokens_by_type(events) == {"input": 0, "output": 0}


def test_unreachable_provider_is_a_502_recorded_without_tokens(gateway: TollwayProcess, sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="gone", messages=MESSAGES)
    assert caught.value.status_code == 502
    error = caught.value.response.json()["error"]
    assert error["code"] == "upstream_unavailable"
    assert error["type"] == "api_error"

    events = records_of(gateway, caught.value.response.headers["x-request-id"])
    record = request_record(events)
    assert record["status_code"] == 502
    assert record["provider"] == "gone"
    assert tokens_by_type(events) == {"input": 0, "output": 0}


def test_client_gone_before_the_first_byte_is_recorded_once_marked_partial(
    gateway: TollwayProcess, fake: FakeOpenAI
) -> None:
    """The user pressed stop while the model was thinking: the whole answer is spent, never delivered."""
    fake.enqueue(Reply(usage=usage_block(64, 32), delay_s=0.8))
    body = orjson.dumps({"model": "gpt-4o", "messages": MESSAGES, "stream": True})
    calls_before = len(fake.received)
    gone_before = client_gone_count(gateway)
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: tollway\r\nAuthorization: Bearer "
            + KEY.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        wait_until(lambda: len(fake.received) == calls_before + 1)
    # The socket is closed while the upstream is still thinking (it answers 0.8 s after it got the call).
    request_id = ""

    def recorded() -> bool:
        nonlocal request_id
        records = [e for e in stored_events(database(gateway)) if e.type == "llm.request"]
        matching = [e for e in records if e.data["input_tokens"] == 64 and e.data["output_tokens"] == 32]
        if matching:
            request_id = matching[0].request_id
        return bool(matching)

    wait_until(recorded, timeout_s=15)
    assert len(fake.received) == calls_before + 1
    events = records_of(gateway, request_id)
    record = request_record(events)
    assert record["partial"] is True, "the client received none of it"
    assert record["estimated"] is False
    assert tokens_by_type(events) == {"input": 64, "output": 32}
    # The gateway took its client-gone path for this call (counted as status 499), not a normal ending.
    wait_until(lambda: client_gone_count(gateway) == gone_before + 1)


def client_gone_count(gateway: TollwayProcess) -> float:
    metrics = httpx.get(gateway.base_url + "/metrics").text
    name = 'tollway_requests_total{route="/v1/chat/completions",model="gpt-4o",status="499"}'
    try:
        return prometheus_value(metrics, name)
    except AssertionError:  # no such call yet
        return 0.0
