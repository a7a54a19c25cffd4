"""Fuzzing the decoding of what clients send: the gateway's three client formats (OpenAI chat and embeddings,
OpenAI Responses, Anthropic Messages) and the events API, over the whole app in process.

Bodies are random JSON (nulls, booleans, integers of any size, floats including NaN and infinities, text),
random bytes, structures nested up to 2,000 deep or thousands wide, numbers written with thousands of digits
or exponents past a double, and objects with a duplicated key, alone or inside an otherwise valid request.
Whatever comes: never a 5xx, an error body in the caller's shape, nothing logged at ERROR or with a
traceback, and a refused request records no usage and stores no event.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.whole_app import ADMIN, GATEWAY, App, running
from tollway import bounded_json
from tollway.errors import ValidationError
from tollway.metering.events import Event
from tollway.metering.llm import LlmCall

EXAMPLES = 80  # per target; each target runs in about 2 s

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)


def nested(depth: int, objects: bool) -> str:
    if objects:
        return '{"k":' * depth + "1" + "}" * depth
    return "[" * depth + "1" + "]" * depth


deep_texts = st.builds(nested, st.integers(120, 1100) | st.integers(1, 2000), st.booleans())  # 254..1023: the 500s
special_texts = st.one_of(
    deep_texts,
    st.integers(19, 5000).map(lambda digits: "9" * digits),
    st.integers(19, 400).map(lambda digits: "-" + "9" * digits),
    st.integers(300, 100_000).map(lambda exponent: f"1e{exponent}"),
    st.sampled_from(["NaN", "Infinity", "-Infinity", '"\\ud800"', '"\\udfff x"', "1.5e-400", "-0", "1E+2"]),
    st.integers(100, 3000).map(lambda n: "[" + ",".join(["{}"] * n) + "]"),
    st.integers(100, 2000).map(lambda n: "{" + ",".join(f'"k{i}":{i}' for i in range(n)) + "}"),
)


def duplicated(key: str, first: Any, second: Any) -> str:
    return "{" + f"{json.dumps(key)}: {json.dumps(first)}, {json.dumps(key)}: {json.dumps(second)}" + "}"


duplicate_texts = st.builds(
    duplicated, st.sampled_from(["model", "messages", "subject", "x", ""]), json_values, json_values
)
values_as_text = st.one_of(json_values.map(json.dumps), special_texts, duplicate_texts)

# A request that would be valid, with one field (known or not) set to any value, written as raw text.
CHAT = '{"model": "demo", "messages": [{"role": "user", "content": "Hi"}], %s: %s}'
EMBEDDINGS = '{"model": "demo", "input": "hello", %s: %s}'
RESPONSES = '{"model": "demo", "input": "hello", %s: %s}'
MESSAGES = '{"model": "demo", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}], %s: %s}'
EVENT = (
    '{"specversion": "1.0", "id": "fuzz", "source": "fuzz", "type": "api.call", "subject": "acme", '
    '"time": "2026-10-05T10:15:00Z", "data": {"n": 1}, %s: %s}'
)
FIELDS = st.sampled_from(["model", "messages", "input", "stream", "max_tokens", "metadata", "seed", "x"])
EVENT_FIELDS = st.sampled_from(["id", "source", "type", "subject", "time", "data", "specversion", "x"])
# Valid requests whose %s the gateway re-encodes (a model alias rewrites `model`; a translation rewrites all):
# deep values there were the 500s of the issue.
SCHEMA = '{"type": "object", "properties": {"a": %s}}'
CARRIED = {
    "chat": '{"model": "aliased", "messages": [{"role": "user", "content": "Hi"}], "x": %s}',
    "embeddings": '{"model": "aliased", "input": "hello", "x": %s}',
    "responses": '{"model": "aliased", "input": "hello", "tools": [{"type": "function", "name": "t", "parameters": '
    + SCHEMA
    + "}]}",
    "messages": '{"model": "aliased", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}], '
    '"tools": [{"name": "t", "input_schema": ' + SCHEMA + "}]}",
    "event": EVENT % ('"x"', "%s"),
}


def within(template: str, fields: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda f, v: (template % (json.dumps(f), v)).encode("utf-8", "surrogatepass"), fields, values_as_text
    )


def bodies(template: str, fields: st.SearchStrategy[str], carried: str) -> st.SearchStrategy[bytes]:
    in_carried = st.builds(
        lambda value: (carried % value).encode("utf-8", "surrogatepass"), deep_texts | special_texts | values_as_text
    )
    return st.one_of(
        in_carried,
        within(template, fields),
        in_carried,  # twice: half the examples go where the gateway re-encodes
        values_as_text.map(lambda text: text.encode("utf-8", "surrogatepass")),
        st.binary(max_size=300),
    )


ShapeCheck = Callable[[httpx.Response], None]


def undecodable(body: bytes) -> bool:
    try:
        bounded_json.decode(body)
    except ValidationError:
        return True
    return False


def openai_shape(response: httpx.Response) -> None:
    assert isinstance(response.json()["error"]["message"], str)


def anthropic_shape(response: httpx.Response) -> None:
    body = response.json()
    assert body["type"] == "error"
    assert isinstance(body["error"]["message"], str)


def problem_shape(response: httpx.Response) -> None:
    assert response.headers["content-type"] == "application/problem+json"
    assert isinstance(response.json()["detail"], str)


TARGETS: list[tuple[str, dict[str, str], st.SearchStrategy[bytes], ShapeCheck]] = [
    ("/v1/chat/completions", GATEWAY, bodies(CHAT, FIELDS, CARRIED["chat"]), openai_shape),
    ("/v1/embeddings", GATEWAY, bodies(EMBEDDINGS, FIELDS, CARRIED["embeddings"]), openai_shape),
    ("/v1/responses", GATEWAY, bodies(RESPONSES, FIELDS, CARRIED["responses"]), openai_shape),
    ("/v1/messages", GATEWAY, bodies(MESSAGES, FIELDS, CARRIED["messages"]), anthropic_shape),
    (
        "/api/v1/events",
        {**ADMIN, "content-type": "application/cloudevents+json"},
        bodies(EVENT, EVENT_FIELDS, CARRIED["event"]),
        problem_shape,
    ),
]


class UsageCount:
    """Counts what the gateway hands to its usage sink: every call record, and those carrying token usage.

    A request the upstream refuses is recorded as a call (its status, no tokens); one Tollway refuses is not."""

    def __init__(self, app: App) -> None:
        self.calls = self.billed = 0
        sink: Any = app.runtime.pipeline
        record_call, emit = sink.record_call, sink.emit

        def counted_call(call: LlmCall) -> None:
            self.calls += 1
            self.billed += call.usage is not None
            record_call(call)

        def counted_emit(events: list[Event]) -> None:
            self.calls += len(events)
            self.billed += len(events)
            emit(events)

        sink.record_call, sink.emit = counted_call, counted_emit


@pytest.mark.parametrize("target", TARGETS, ids=[t[0] for t in TARGETS])
def test_fuzzed_bodies_never_fail_the_server(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    target: tuple[str, dict[str, str], st.SearchStrategy[bytes], ShapeCheck],
) -> None:
    path, headers, strategy, shape = target
    caplog.set_level(logging.WARNING)
    with asyncio.Runner() as runner:
        context = running(tmp_path)
        app = runner.run(context.__aenter__())
        try:
            usage = UsageCount(app)
            stats = app.runtime.store.stats
            seen: dict[int, int] = {}

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(body=strategy)
            def check(body: bytes) -> None:
                calls, billed, stored = usage.calls, usage.billed, stats.inserted_total
                response = runner.run(app.client.post(path, content=body, headers=headers))
                seen[response.status_code] = seen.get(response.status_code, 0) + 1
                assert response.status_code < 500, (body[:300], response.text[:500])
                if response.status_code >= 400:
                    shape(response)
                    assert usage.billed == billed, body[:300]
                    if undecodable(body):  # refused by Tollway before any upstream call
                        assert usage.calls == calls, body[:300]
                    if path == "/api/v1/events":  # (gateway usage is stored in the background, later)
                        assert stats.inserted_total == stored, body[:300]
                broken = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
                assert broken == [], [r.getMessage() for r in broken]

            check()
            assert seen.get(400, 0) > EXAMPLES // 4, seen  # the refusals were exercised, not only successes
        finally:
            runner.run(context.__aexit__(None, None, None))
