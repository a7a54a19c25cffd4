"""The one request flow's failure paths: whatever happens, an admitted call's reservation is released
exactly once, and a call leaves exactly one usage record (settled with the same record) or none."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tollway.clock import FrozenClock
from tollway.errors import LimitExceededError, UnavailableError
from tollway.gateway.adapt import FormatAdapter
from tollway.gateway.app import Gateway
from tollway.gateway.endpoint import LlmEndpoint
from tollway.gateway.endpoints import ENDPOINTS
from tollway.gateway.endpoints.chat_completions import CHAT_COMPLETIONS
from tollway.gateway.flow import Flow
from tollway.gateway.hooks import Admit, Attempt, Reservation, TargetPolicy
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.providers.base import BufferedResponse, Provider, UpstreamError, UpstreamRequest, UpstreamResponse
from tollway.gateway.relay import GatewayLimits
from tollway.gateway.routing import Route, Router, Target
from tollway.gateway.state import GatewayState
from tollway.gateway.translate.common import EventTranslator
from tollway.identity.key_index import Identity, KeyIndex, hash_key
from tollway.metering.events import Event
from tollway.metering.intents import CallIntent
from tollway.metering.llm import LlmCall, TokenUsage

KEY = b"key-12345678"
CHAT = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}]})
STREAM = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}], "stream": True})
MESSAGES = orjson.dumps({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]})
ANSWER = {
    "id": "c1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
}


@dataclass
class Ledger:
    """What the admission hook and the usage sink saw, in order."""

    admitted: list[Admit] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    settled: list[LlmCall] = field(default_factory=list)
    records: list[LlmCall] = field(default_factory=list)


class RecordingReservation:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def settle(self, record: LlmCall) -> None:
        self._ledger.events.append("settle")
        self._ledger.settled.append(record)

    def release(self) -> None:
        self._ledger.events.append("release")


class RecordingAdmission:
    def __init__(self, ledger: Ledger, refuse: str | None = None) -> None:
        self._ledger = ledger
        self._refuse = refuse

    async def admit(self, call: Admit) -> Reservation:
        self._ledger.admitted.append(call)
        if self._refuse is not None:
            raise LimitExceededError(self._refuse)
        return RecordingReservation(self._ledger)


class RecordingSink:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @property
    def backlog(self) -> int:
        return 0

    def emit(self, events: Sequence[Event]) -> None:
        raise AssertionError("the flow records calls, not raw events")

    def record_call(self, call: LlmCall) -> None:
        self._ledger.events.append("record")
        self._ledger.records.append(call)

    def begin(self, intent: CallIntent) -> None:
        return None

    def end(self, request_id: str) -> None:
        return None

    def probe(self) -> None:
        return None

    async def start(self) -> None: ...

    async def halt(self) -> None:
        pass

    async def stop(self, timeout_s: float = 10.0) -> bool:
        return True


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class Scripted:
    """A provider that answers from a script: a response, or an UpstreamError to raise."""

    native_paths = frozenset({"/chat/completions", "/embeddings"})

    def __init__(self, answer: UpstreamError | tuple[int, str, list[bytes]], name: str = "scripted") -> None:
        self.name = name
        self._answer = answer
        self.sent: list[UpstreamRequest] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        self.sent.append(request)
        if isinstance(self._answer, UpstreamError):
            raise self._answer
        status, content_type, parts = self._answer
        return BufferedResponse(status, content_type, _chunks(parts))


def build(
    ledger: Ledger,
    provider: Any,
    *,
    refuse: str | None = None,
    endpoints: tuple[Any, ...] = ENDPOINTS,
    policy: TargetPolicy | None = None,
) -> Gateway:
    state = GatewayState(
        keys=KeyIndex.build([(hash_key(KEY.decode()), Identity("acme", None))]),
        router=Router({"m": Route(model="m", targets=(Target(provider=provider, model="m-upstream"),))}),
        prices={},
    )
    flow = Flow(
        state,
        RecordingSink(ledger),
        GatewayMetrics(),
        FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)),
        GatewayLimits(max_body_bytes=4096, drain_timeout_s=0.2),
        admission=RecordingAdmission(ledger, refuse),
        policy=policy,
    )
    return Gateway(flow, endpoints=endpoints)


async def post(
    app: Gateway, path: str, body: bytes, *, disconnect_first: bool = False
) -> tuple[int, bytes, list[dict[str, Any]]]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"authorization", b"Bearer " + KEY), (b"content-type", b"application/json")],
    }
    incoming: list[dict[str, Any]] = [] if disconnect_first else [{"type": "http.request", "body": body}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    status = sent[0]["status"] if sent else 0
    return status, b"".join(m.get("body", b"") for m in sent[1:]), sent


def assert_released_once(ledger: Ledger) -> None:
    assert ledger.events.count("release") == 1
    assert ledger.events[-1] == "release", "released last, after any record and settle"


def assert_one_record_settled(ledger: Ledger) -> LlmCall:
    assert len(ledger.records) == 1
    assert ledger.settled == ledger.records, "settle gets the very usage record the sink got"
    assert ledger.events == ["record", "settle", "release"]
    return ledger.records[0]


async def test_a_served_call_is_admitted_recorded_settled_then_released() -> None:
    ledger = Ledger()
    provider = Scripted((200, "application/json", [orjson.dumps(ANSWER)]))
    status, body, _ = await post(build(ledger, provider), "/v1/chat/completions", CHAT)
    assert status == 200
    assert orjson.loads(body)["choices"][0]["message"]["content"] == "hi"
    assert [(a.consumer.username, a.model, a.endpoint, a.stream) for a in ledger.admitted] == [
        ("acme", "m", "/v1/chat/completions", False)
    ]
    record = assert_one_record_settled(ledger)
    assert (record.status_code, record.usage.input if record.usage else None) == (200, 7)
    assert record.usage is not None
    assert record.usage.output == 3
    assert provider.sent[0].payload["model"] == "m-upstream"


async def test_parse_error_admits_nothing_and_records_nothing() -> None:
    ledger = Ledger()
    status, body, _ = await post(build(ledger, Scripted(UpstreamError("unused"))), "/v1/chat/completions", b"{nope")
    assert status == 400
    assert orjson.loads(body)["error"]["type"] == "invalid_request_error"
    assert ledger.admitted == []
    assert ledger.events == []


async def test_unknown_model_admits_nothing_and_records_nothing() -> None:
    ledger = Ledger()
    request = orjson.dumps({"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    status, body, _ = await post(build(ledger, Scripted(UpstreamError("unused"))), "/v1/chat/completions", request)
    assert status == 404
    error = orjson.loads(body)["error"]
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    assert ledger.admitted == []
    assert ledger.events == []


@pytest.mark.parametrize(("timed_out", "expected"), [(False, 502), (True, 504)])
async def test_unreachable_upstream_is_one_failed_record_then_released(timed_out: bool, expected: int) -> None:
    ledger = Ledger()
    app = build(ledger, Scripted(UpstreamError("connection refused", timeout=timed_out)))
    status, body, _ = await post(app, "/v1/chat/completions", CHAT)
    assert status == expected
    error = orjson.loads(body)["error"]
    assert (error["type"], error["code"]) == ("api_error", "upstream_unavailable")
    record = assert_one_record_settled(ledger)
    assert (record.status_code, record.usage) == (expected, None)


async def test_client_gone_before_the_body_admits_nothing() -> None:
    ledger = Ledger()
    status, _, sent = await post(
        build(ledger, Scripted(UpstreamError("unused"))), "/v1/chat/completions", CHAT, disconnect_first=True
    )
    assert sent == []
    assert status == 0
    assert ledger.admitted == []
    assert ledger.events == []


async def test_client_gone_mid_stream_is_one_partial_record_then_released() -> None:
    ledger = Ledger()
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
    parts = [b"data: " + orjson.dumps(chunk) + b"\n\n", b"data: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n"]
    app = build(ledger, Scripted((200, "text/event-stream", parts)))
    # receive(): the body, then http.disconnect at once: the client is gone while the stream is relayed
    status, _, _ = await post(app, "/v1/chat/completions", STREAM)
    assert status == 200
    record = assert_one_record_settled(ledger)
    assert record.streamed
    assert record.partial
    assert record.usage is not None
    assert (record.usage.input, record.usage.output) == (5, 2)


async def test_translator_refusing_the_request_records_nothing_and_releases() -> None:
    ledger = Ledger()
    provider = Scripted(
        (200, "application/json", [orjson.dumps(ANSWER)])
    )  # speaks chat only: /v1/messages is translated
    bad = orjson.dumps({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": 5}]})
    status, body, _ = await post(build(ledger, provider), "/v1/messages", bad)
    assert status == 400
    shaped = orjson.loads(body)
    assert shaped["type"] == "error"
    assert shaped["error"]["type"] == "invalid_request_error"
    assert provider.sent == []
    assert len(ledger.admitted) == 1
    assert ledger.events == ["release"]


def _broken_adapter(_clock: Any) -> Any:
    def make(provider: Provider) -> Provider:
        return FormatAdapter(
            provider,
            path="/broken",
            to_chat=lambda payload: payload,
            from_chat=lambda body: {"n": 1 // 0},
            stream=lambda _: BrokenStream(),
            error=lambda raw, status: raw,
        )

    return make


class BrokenStream:
    """Passes `passed` events on, then fails: a bug in a stream translator."""

    def __init__(self, passed: int = 1) -> None:
        self._passed = passed

    def feed(self, event: bytes) -> bytes:
        if self._passed <= 0:
            raise RuntimeError("a bug in a stream translator")
        self._passed -= 1
        return event

    def finish(self) -> bytes:
        return b""


_: type[EventTranslator] = BrokenStream
BROKEN = LlmEndpoint(
    path="/v1/broken",
    upstream_path="/broken",
    parse=CHAT_COMPLETIONS.parse,
    build=CHAT_COMPLETIONS.build,
    usage_of=CHAT_COMPLETIONS.usage_of,
    estimate=CHAT_COMPLETIONS.estimate,
    errors=CHAT_COMPLETIONS.errors,
    tracker=CHAT_COMPLETIONS.tracker,
    adapter=_broken_adapter,
)


async def test_translator_failing_on_the_answer_is_one_failed_record_then_released() -> None:
    ledger = Ledger()
    provider = Scripted((200, "application/json", [orjson.dumps(ANSWER)]))
    status, body, _ = await post(build(ledger, provider, endpoints=(BROKEN,)), "/v1/broken", CHAT)
    assert status == 500
    assert orjson.loads(body)["error"]["code"] == "internal_error"
    record = assert_one_record_settled(ledger)
    assert (record.status_code, record.usage) == (500, None)


async def test_translator_failing_mid_stream_is_one_partial_record_then_released() -> None:
    ledger = Ledger()
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}}]}
    event = b"data: " + orjson.dumps(chunk) + b"\n\n"
    provider = Scripted((200, "text/event-stream", [event, event]))  # the first event passes, the second fails
    status, _, _ = await post(build(ledger, provider, endpoints=(BROKEN,)), "/v1/broken", STREAM)
    assert status == 200  # the stream had started when the translator failed
    record = assert_one_record_settled(ledger)
    assert record.partial
    assert record.streamed


async def test_limit_exceeded_reaches_openai_and_anthropic_clients_with_the_same_message() -> None:
    message = "acme has spent its monthly budget of 10.00 USD."
    ledger = Ledger()
    app = build(ledger, Scripted((200, "application/json", [orjson.dumps(ANSWER)])), refuse=message)
    status, body, _ = await post(app, "/v1/chat/completions", CHAT)
    assert status == 429
    assert orjson.loads(body) == {
        "error": {"message": message, "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}
    }
    status, body, _ = await post(app, "/v1/messages", MESSAGES)
    assert status == 429
    assert orjson.loads(body) == {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
    assert len(ledger.admitted) == 2
    assert ledger.events == [], "a refused call is never reserved, so nothing is settled or released"


async def test_translator_failing_on_the_first_event_is_a_500_and_one_failed_record() -> None:
    # The stream's first chunk is read before anything is sent (failover waits for it): nothing started yet.
    ledger = Ledger()
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}}]}
    provider = Scripted((200, "text/event-stream", [b"data: " + orjson.dumps(chunk) + b"\n\n"]))
    app = build(ledger, provider, endpoints=(_endpoint_failing_at_once(),))
    status, body, _ = await post(app, "/v1/broken", STREAM)
    assert status == 500
    assert orjson.loads(body)["error"]["code"] == "internal_error"
    record = assert_one_record_settled(ledger)
    assert (record.status_code, record.usage, record.partial) == (500, None, False)


def _endpoint_failing_at_once() -> LlmEndpoint:
    def adapter(_clock: Any) -> Any:
        def make(provider: Provider) -> Provider:
            return FormatAdapter(
                provider,
                path="/broken",
                to_chat=lambda payload: payload,
                from_chat=lambda body: body,
                stream=lambda _: BrokenStream(passed=0),
                error=lambda raw, status: raw,
            )

        return make

    return replace(BROKEN, adapter=adapter)


class NoUsableTarget:
    """A target policy with every target unusable (all breakers open): it refuses before any try."""

    def targets(self, route: Route, call: Admit) -> Sequence[Target]:
        raise UnavailableError("No target of the model 'm' can take a request now.", code="no_usable_target")

    def started(self, target: Target) -> None:
        raise AssertionError("no try")

    def finished(self, attempt: Attempt) -> None:
        raise AssertionError("no try")


async def test_policy_refusing_every_target_is_a_503_that_records_nothing_and_releases() -> None:
    ledger = Ledger()
    provider = Scripted((200, "application/json", [orjson.dumps(ANSWER)]))
    app = build(ledger, provider, policy=NoUsableTarget())
    status, body, _ = await post(app, "/v1/chat/completions", CHAT)
    assert status == 503
    assert orjson.loads(body)["error"]["code"] == "no_usable_target"
    assert provider.sent == []
    assert len(ledger.admitted) == 1
    assert ledger.events == ["release"], "admitted, refused before any upstream call: released, nothing recorded"


class Hanging:
    """A provider that never answers."""

    native_paths = frozenset({"/chat/completions"})
    name = "hanging"

    def __init__(self) -> None:
        self.asked = asyncio.Event()

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        self.asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_call_cancelled_while_its_upstream_is_asked_is_one_interrupted_record_then_released() -> None:
    """A stop whose grace period ran out cancels a call waiting for its upstream: metered from its intent."""
    ledger, provider = Ledger(), Hanging()
    task = asyncio.create_task(post(build(ledger, provider), "/v1/chat/completions", CHAT))
    await provider.asked.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = assert_one_record_settled(ledger)
    assert (record.interrupted, record.partial, record.estimated, record.status_code) == (True, True, True, 0)
    assert record.usage == TokenUsage(input=8), "3 + 3 per message + ceil(len('hello') / 4)"
