"""The failover loop on scripted providers: the target policy hears every try (started, then finished once,
with its cause), the order it returns is kept, backoff waits are capped and jittered by an injected
random generator, max_attempts and the deadline stop retrying, and every case leaves one usage record.
Also: the settings' resolution (target > model > provider), Retry-After parsing, and attempt records in the
journal line and the usage events."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from random import Random
from typing import Any

import orjson
import pytest
from pydantic import ValidationError as PydanticError

from tests.unit.test_flow import ANSWER, CHAT, KEY, Ledger, RecordingAdmission, RecordingSink, Scripted, post
from tollway.clock import FrozenClock
from tollway.config.resilience import RetryConfig, TimeoutsConfig, resolve_retry, resolve_timeouts
from tollway.config.schema import TollwayConfig
from tollway.gateway.app import Gateway
from tollway.gateway.flow import Flow
from tollway.gateway.hooks import Admit, Attempt
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.providers.base import BufferedResponse, UpstreamError, UpstreamRequest, UpstreamResponse
from tollway.gateway.relay import GatewayLimits
from tollway.gateway.resilience import DEFAULT_RETRY, RetryPolicy, Timeouts, retry_after_s
from tollway.gateway.routing import Route, Router, Target
from tollway.gateway.state import GatewayState
from tollway.identity.key_index import Identity, KeyIndex, hash_key
from tollway.metering.llm import (
    ATTEMPT_EVENT,
    REQUEST_EVENT,
    TOKENS_EVENT,
    AttemptRecord,
    LlmCall,
    TokenUsage,
    call_from_record,
    call_record,
    llm_call_events,
    llm_event_count,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OK = (200, "application/json", [orjson.dumps(ANSWER)])
ERROR = orjson.dumps({"error": {"message": "busy", "type": "server_error"}})


class Answers:
    """A provider answering from a list, one entry per call: (status, headers) or an UpstreamError."""

    native_paths = frozenset({"/chat/completions"})

    def __init__(self, name: str, *answers: tuple[int, list[tuple[bytes, bytes]]] | UpstreamError) -> None:
        self.name = name
        self._answers = list(answers)
        self.calls = 0

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        self.calls += 1
        answer = self._answers.pop(0)
        if isinstance(answer, UpstreamError):
            raise answer
        status, headers = answer
        body = orjson.dumps(ANSWER) if status == 200 else ERROR
        response = BufferedResponse(status, "application/json", _one(body))
        response.relayed_headers = headers
        return response


async def _one(body: bytes) -> Any:
    yield body


class RecordingPolicy:
    def __init__(self, order: Sequence[int] | None = None) -> None:
        self.order = order
        self.heard: list[str] = []
        self.attempts: list[Attempt] = []

    def targets(self, route: Route, call: Admit) -> Sequence[Target]:
        return route.targets if self.order is None else [route.targets[i] for i in self.order]

    def started(self, target: Target) -> None:
        self.heard.append(f"started {target.provider.name}")

    def finished(self, attempt: Attempt) -> None:
        self.heard.append(f"finished {attempt.target.provider.name} {attempt.cause}")
        self.attempts.append(attempt)


def gateway(
    ledger: Ledger,
    *providers: Any,
    retry: RetryPolicy = DEFAULT_RETRY,
    policy: RecordingPolicy | None = None,
    sleeps: list[float] | None = None,
    windows: Sequence[int | None] = (),
) -> Gateway:
    targets = tuple(
        Target(p, f"{p.name}-model", retry, Timeouts(), windows[i] if i < len(windows) else None)
        for i, p in enumerate(providers)
    )
    state = GatewayState(
        keys=KeyIndex.build([(hash_key(KEY.decode()), Identity("acme", None))]),
        router=Router({"m": Route(model="m", targets=targets)}),
        prices={},
    )

    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    flow = Flow(
        state,
        RecordingSink(ledger),
        GatewayMetrics(),
        FrozenClock(NOW),
        GatewayLimits(max_body_bytes=4096, drain_timeout_s=0.2),
        admission=RecordingAdmission(ledger),
        policy=policy,
        rng=Random(7),
        sleep=sleep,
    )
    return Gateway(flow)


async def test_the_policy_hears_every_try_once_in_the_order_it_chose() -> None:
    ledger, policy = Ledger(), RecordingPolicy(order=[1, 0])
    a = Answers("a", (200, []))
    b = Answers("b", (429, [(b"retry-after", b"7")]))
    status, _, sent = await post(gateway(ledger, a, b, policy=policy), "/v1/chat/completions", CHAT)
    assert status == 200
    assert (a.calls, b.calls) == (1, 1)
    assert policy.heard == ["started b", "finished b status", "started a", "finished a ok"]
    failed, served = policy.attempts
    assert (failed.status, failed.retry_after_s) == (429, 7.0)
    assert (served.status, served.retry_after_s) == (200, None)
    headers = dict(sent[0]["headers"])
    assert (headers[b"x-tollway-provider"], headers[b"x-tollway-model"]) == (b"a", b"a-model")
    (record,) = ledger.records
    assert (record.provider, record.upstream_model, record.status_code) == ("a", "a-model", 200)
    assert record.attempts == (AttemptRecord("b", "b-model", 429, "status"),)


async def test_unreachable_and_timed_out_tries_are_attempts_then_the_gateway_answers_for_the_last() -> None:
    ledger, policy = Ledger(), RecordingPolicy()
    a = Answers("a", UpstreamError("refused"))
    b = Answers("b", UpstreamError("too slow", timeout=True))
    status, body, _ = await post(gateway(ledger, a, b, policy=policy), "/v1/chat/completions", CHAT)
    assert status == 504
    assert orjson.loads(body)["error"]["code"] == "upstream_unavailable"
    assert [a.cause for a in policy.attempts] == ["unreachable", "timeout"]
    (record,) = ledger.records
    assert (record.provider, record.status_code, record.usage) == ("b", 504, None)
    assert record.attempts == (AttemptRecord("a", "a-model", None, "unreachable"),)


async def test_one_target_is_retried_with_capped_jittered_backoff_up_to_max_attempts() -> None:
    ledger, sleeps = Ledger(), list[float]()
    retry = RetryPolicy(max_attempts=4, backoff_initial_s=0.1, backoff_max_s=0.3)
    a = Answers("a", (503, []), (503, []), (503, []), (200, []))
    status, _, _ = await post(gateway(ledger, a, retry=retry, sleeps=sleeps), "/v1/chat/completions", CHAT)
    assert status == 200
    assert a.calls == 4
    # waits before tries 2, 3, 4: caps 0.1, 0.2, 0.3 (0.4 capped), each half fixed and half jittered
    rng = Random(7)
    assert sleeps == [0.05 + rng.random() * 0.05, 0.1 + rng.random() * 0.1, 0.15 + rng.random() * 0.15]
    assert 0.05 <= sleeps[0] <= 0.1
    assert 0.15 <= sleeps[2] <= 0.3
    (record,) = ledger.records
    assert record.attempts == (AttemptRecord("a", "a-model", 503, "status"),) * 3


async def test_the_last_retryable_answer_is_passed_on_when_no_try_is_left() -> None:
    ledger = Ledger()
    a, b = Answers("a", (503, [])), Answers("b", (500, []))
    status, body, _ = await post(gateway(ledger, a, b), "/v1/chat/completions", CHAT)
    assert status == 500
    assert orjson.loads(body)["error"]["message"] == "busy"
    (record,) = ledger.records
    assert (record.provider, record.status_code) == ("b", 500)
    assert record.attempts == (AttemptRecord("a", "a-model", 503, "status"),)


async def test_an_upstream_answer_is_more_telling_than_a_later_unreachable_target() -> None:
    ledger = Ledger()
    a, b = Answers("a", (429, [])), Answers("b", UpstreamError("refused"))
    status, _, _ = await post(gateway(ledger, a, b), "/v1/chat/completions", CHAT)
    assert status == 429
    (record,) = ledger.records
    assert (record.provider, record.status_code) == ("a", 429)
    assert record.attempts == (AttemptRecord("b", "b-model", None, "unreachable"),)


async def test_a_retry_after_longer_than_the_backoff_cap_is_not_waited_for() -> None:
    ledger, sleeps = Ledger(), list[float]()
    retry = RetryPolicy(max_attempts=3, backoff_initial_s=0.1, backoff_max_s=1.0)
    a = Answers("a", (429, [(b"retry-after", b"30")]))
    status, _, _ = await post(gateway(ledger, a, retry=retry, sleeps=sleeps), "/v1/chat/completions", CHAT)
    assert status == 429
    assert (a.calls, sleeps) == (1, [])


async def test_a_short_retry_after_is_waited_for() -> None:
    ledger, sleeps = Ledger(), list[float]()
    retry = RetryPolicy(max_attempts=2, backoff_initial_s=0.1, backoff_max_s=2.0)
    a = Answers("a", (429, [(b"retry-after", b"1")]), (200, []))
    status, _, _ = await post(gateway(ledger, a, retry=retry, sleeps=sleeps), "/v1/chat/completions", CHAT)
    assert status == 200
    assert sleeps == [1.0]


async def test_no_retry_starts_past_the_deadline() -> None:
    ledger, sleeps = Ledger(), list[float]()
    # the first backoff (at least 50 s) would end past the 1 s deadline: no second try
    retry = RetryPolicy(max_attempts=3, backoff_initial_s=100, backoff_max_s=100, deadline_s=1)
    a = Answers("a", (503, []))
    status, _, _ = await post(gateway(ledger, a, retry=retry, sleeps=sleeps), "/v1/chat/completions", CHAT)
    assert status == 503
    assert (a.calls, sleeps) == (1, [])


async def test_a_status_outside_the_retry_statuses_is_the_answer() -> None:
    ledger = Ledger()
    retry = RetryPolicy(statuses=frozenset({503}))
    a, b = Answers("a", (500, [])), Answers("b", (200, []))
    status, _, _ = await post(gateway(ledger, a, b, retry=retry), "/v1/chat/completions", CHAT)
    assert status == 500
    assert b.calls == 0


async def test_a_policy_with_no_target_is_a_503_and_no_record() -> None:
    ledger, policy = Ledger(), RecordingPolicy(order=[])
    status, _, _ = await post(gateway(ledger, Scripted(OK), policy=policy), "/v1/chat/completions", CHAT)
    assert status == 503
    assert ledger.records == []


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s("7", NOW) == 7.0
    assert retry_after_s("1.5", NOW) == 1.5
    assert retry_after_s("Thu, 01 Jan 2026 00:00:20 GMT", NOW) == 20.0
    assert retry_after_s("Wed, 31 Dec 2025 23:00:00 GMT", NOW) == 0.0  # in the past
    assert retry_after_s("soon", NOW) is None
    assert retry_after_s("-3", NOW) is None
    assert retry_after_s(None, NOW) is None


def test_settings_are_read_from_the_most_specific_level() -> None:
    target = RetryConfig(max_attempts=5)
    model = RetryConfig(statuses=[503], backoff_initial_ms=20)
    provider = RetryConfig(max_attempts=2, backoff_max_ms=400, deadline_s=9)
    assert resolve_retry((target, model, provider)) == RetryPolicy(
        statuses=frozenset({503}), max_attempts=5, backoff_initial_s=0.02, backoff_max_s=0.4, deadline_s=9
    )
    assert resolve_retry((None, None, None)) == DEFAULT_RETRY
    timeouts = resolve_timeouts(
        TimeoutsConfig(first_byte_s=1),
        TimeoutsConfig(idle_s=4, first_byte_s=2),
        TimeoutsConfig(connect_s=3, total_s=30),
        provider_timeout_s=60,
    )
    # the provider's connect_s is its connection pool's own (not carried per request)
    assert timeouts == Timeouts(connect_s=None, first_byte_s=1, idle_s=4, total_s=30)
    assert timeouts.transport
    assert resolve_timeouts(None, None, None, provider_timeout_s=60) == Timeouts(total_s=60)  # timeout_s: compat


@pytest.mark.parametrize(
    ("retry", "problem"),
    [
        ({"statuses": [200]}, "not an HTTP error status"),
        ({"max_attempts": 0}, "greater than or equal to 1"),
        ({"backoff_initial_ms": 500, "backoff_max_ms": 100}, "backoff_max_ms must be at least backoff_initial_ms"),
        ({"tries": 3}, "Extra inputs are not permitted"),
    ],
)
def test_the_config_refuses_a_bad_retry_shape(retry: dict[str, Any], problem: str) -> None:
    config = {
        "providers": [{"name": "p", "type": "simulator"}],
        "models": [{"name": "m", "targets": [{"provider": "p", "model": "m"}], "retry": retry}],
    }
    with pytest.raises(PydanticError) as caught:
        TollwayConfig.model_validate(config)
    assert problem in str(caught.value)


def test_the_config_refuses_a_zero_timeout() -> None:
    config = {
        "providers": [{"name": "p", "type": "simulator", "timeouts": {"first_byte_s": 0}}],
        "models": [{"name": "m", "targets": [{"provider": "p", "model": "m", "timeouts": {"idle_s": 1}}]}],
    }
    with pytest.raises(PydanticError) as caught:
        TollwayConfig.model_validate(config)
    assert "first_byte_s" in str(caught.value)


CALL = LlmCall(
    request_id="req_1",
    subject="acme",
    time=NOW,
    model="m",
    upstream_model="gpt-4o-mini",
    provider="west",
    route="/v1/chat/completions",
    status_code=200,
    streamed=False,
    usage=TokenUsage(input=12, output=5),
    attempts=(AttemptRecord("east", "gpt-4o", 500, "status"), AttemptRecord("north", "x", None, "timeout")),
)


def test_attempts_travel_in_the_journal_line() -> None:
    assert call_from_record(orjson.loads(call_record(CALL))) == CALL
    without = replace(CALL, attempts=())
    assert b"attempts" not in call_record(without)  # a call without failover writes what it always wrote


def test_attempts_are_zero_token_events_that_no_meter_bills() -> None:
    events = llm_call_events(CALL)
    assert len(events) == llm_event_count(CALL) == 5
    assert [e.type for e in events] == [TOKENS_EVENT, TOKENS_EVENT, ATTEMPT_EVENT, ATTEMPT_EVENT, REQUEST_EVENT]
    first, second = (e for e in events if e.type == ATTEMPT_EVENT)
    assert (first.id, first.data["provider"], first.data["status_code"], first.data["cause"]) == (
        "req_1:attempt-1",
        "east",
        500,
        "status",
    )
    assert (second.id, second.data["status_code"], second.data["cause"], second.data["tokens"]) == (
        "req_1:attempt-2",
        None,
        "timeout",
        0,
    )
    request = events[-1].data
    assert (request["provider"], request["input_tokens"], request["attempts"]) == ("west", 12, 3)
    assert sum(int(e.data["tokens"]) for e in events if e.type == TOKENS_EVENT) == 17


async def test_attempts_are_recorded_in_the_order_they_happened() -> None:
    ledger = Ledger()
    a, b, c = Answers("a", (503, [])), Answers("b", UpstreamError("refused")), Answers("c", (200, []))
    status, _, _ = await post(gateway(ledger, a, b, c), "/v1/chat/completions", CHAT)
    assert status == 200
    (record,) = ledger.records
    assert record.provider == "c"
    assert record.attempts == (
        AttemptRecord("a", "a-model", 503, "status"),
        AttemptRecord("b", "b-model", None, "unreachable"),
    )


class Slow(Answers):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        await asyncio.sleep(0.2)
        return await super().send(request)


async def test_the_deadline_cuts_a_try_and_starts_no_other() -> None:
    ledger = Ledger()
    retry = RetryPolicy(deadline_s=0.02)
    a, b = Slow("a", (200, [])), Answers("b", (200, []))
    status, body, _ = await post(gateway(ledger, a, b, retry=retry), "/v1/chat/completions", CHAT)
    assert status == 504
    assert orjson.loads(body)["error"]["code"] == "upstream_unavailable"
    assert b.calls == 0
    (record,) = ledger.records
    assert (record.provider, record.status_code, record.attempts) == ("a", 504, ())


LONG = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 2000}]})  # 3 + 3 + 500 = 506


async def test_a_prompt_over_a_known_context_window_goes_to_the_next_target() -> None:
    ledger, policy = Ledger(), RecordingPolicy()
    a, b = Answers("a", (200, [])), Answers("b", (200, []))
    status, _, _ = await post(gateway(ledger, a, b, policy=policy, windows=[505, None]), "/v1/chat/completions", LONG)
    assert status == 200
    assert (a.calls, b.calls) == (0, 1)
    assert [(x.target.provider.name, x.cause) for x in policy.attempts] == [("a", "skipped"), ("b", "ok")]
    (record,) = ledger.records
    assert record.attempts == (AttemptRecord("a", "a-model", None, "skipped"),)


async def test_a_prompt_within_the_window_or_for_the_last_target_is_sent() -> None:
    ledger = Ledger()
    a, b = Answers("a", (200, [])), Answers("b", (200, []))
    await post(gateway(ledger, a, b, windows=[506, None]), "/v1/chat/completions", LONG)  # fits exactly
    assert (a.calls, b.calls) == (1, 0)
    only = Answers("only", (200, []))
    await post(gateway(Ledger(), only, windows=[100]), "/v1/chat/completions", LONG)  # the upstream judges
    assert only.calls == 1
