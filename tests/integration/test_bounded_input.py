"""Issue 13, items 1, 3, 4, 5 and 7: the literal inputs that crashed, misled or leaked, each answered with a clear
400 in the caller's shape that changes nothing, over the whole app in process (gateway and management API).

- JSON nested 254 to 1023 levels deep (was a 500 and a traceback when the body was re-encoded; one such event
  failed 120 of 200 concurrent ingest requests);
- duplicate keys (`{"model": "allowed", "model": "forbidden"}` was authorised as the last value);
- integers beyond 64 bits (2^64+1 was forwarded as 1.8446744073709552e+19);
- an event dated 0001-01-01 (then DAY queries in a non-UTC zone answered 500) and `from=0001-01-01T00:00:00+01:00`;
- `time: 0`, and retries of an event sent without `time` (counted as conflicting duplicates).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import orjson
import pytest

from tests.support.composed import CONSUMER_KEY
from tests.support.stored import stored_events
from tests.support.whole_app import ADMIN, GATEWAY, App, running
from tollway.metering.events import Event

BATCH = {**ADMIN, "content-type": "application/cloudevents-batch+json"}
SINGLE = {**ADMIN, "content-type": "application/cloudevents+json"}
MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with running(tmp_path) as running_app:
        yield running_app


@pytest.fixture(autouse=True)
def no_traceback(caplog: pytest.LogCaptureFixture) -> Any:
    """No refusal here may log an error or a traceback."""
    caplog.set_level(logging.INFO)
    yield
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert bad == [], [r.getMessage() for r in bad]


def deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def deep_bytes(depth: int) -> bytes:
    return b"[" * depth + b'"bottom"' + b"]" * depth


def event(event_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "bounded-input",
        "type": "api.call",
        "subject": "acme",
        "time": "2026-10-05T10:15:00Z",
        "data": {"n": 1},
        **overrides,
    }


def openai_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == "invalid_request_error"
    return body["error"]  # type: ignore[no-any-return]


def anthropic_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    return body["error"]  # type: ignore[no-any-return]


def problem(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()  # type: ignore[no-any-return]


# -- item 1: deep JSON on every gateway endpoint --------------------------------------------------------

OPENAI_BODIES: dict[str, dict[str, Any]] = {
    # stream: the gateway rewrites the body (stream_options.include_usage), which re-encodes it
    "/v1/chat/completions": {"model": "demo", "messages": MESSAGES, "stream": True},
    "/v1/embeddings": {"model": "demo", "input": "hello"},
    "/v1/responses": {"model": "demo", "input": "hello"},
}


@pytest.mark.parametrize("depth", [254, 300, 1023])
async def test_deep_json_answers_400_on_every_gateway_endpoint(app: App, depth: int) -> None:
    for path, body in OPENAI_BODIES.items():
        raw = orjson.dumps({**body, "metadata": "PLACEHOLDER"}).replace(b'"PLACEHOLDER"', deep_bytes(depth))
        error = openai_error(await app.client.post(path, content=raw, headers=GATEWAY))
        assert "nested too deeply: at most 128 levels" in error["message"], path
    raw = orjson.dumps({"model": "demo", "max_tokens": 16, "messages": MESSAGES, "metadata": "PLACEHOLDER"})
    raw = raw.replace(b'"PLACEHOLDER"', deep_bytes(depth))
    error = anthropic_error(await app.client.post("/v1/messages", content=raw, headers=GATEWAY))
    assert "nested too deeply" in error["message"]
    assert app.usage() == []


async def test_deep_json_through_the_official_sdks(app: App) -> None:
    async with (
        # both SDKs are built on httpx2 (a fork of httpx with the same API)
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app.asgi), base_url="http://tollway") as http,
        openai.AsyncOpenAI(base_url="http://tollway/v1", api_key=CONSUMER_KEY, http_client=http) as client,
        anthropic.AsyncAnthropic(base_url="http://tollway", api_key=CONSUMER_KEY, http_client=http) as claude,
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="demo", messages=[{"role": "user", "content": "Hi"}], extra_body={"deep": deep(300)}
            )
        assert "nested too deeply" in str(caught.value)
        with pytest.raises(anthropic.BadRequestError) as refused:
            await claude.messages.create(
                model="demo",
                max_tokens=16,
                messages=[{"role": "user", "content": "Hi"}],
                extra_body={"deep": deep(300)},
            )
        assert "nested too deeply" in str(refused.value)
    assert app.usage() == []


# -- item 4: duplicate keys --------------------------------------------------------------------------------


async def test_duplicate_model_key_is_refused_naming_it(app: App) -> None:
    raw = b'{"model": "demo", "model": "forbidden", "messages": [{"role": "user", "content": "Hi"}]}'
    error = openai_error(await app.client.post("/v1/chat/completions", content=raw, headers=GATEWAY))
    assert "the key 'model' appears twice" in error["message"]
    assert error["param"] == "model"
    raw = b'{"model": "demo", "max_tokens": 8, "messages": [{"role": "user", "role": "assistant", "content": "Hi"}]}'
    error = anthropic_error(await app.client.post("/v1/messages", content=raw, headers=GATEWAY))
    assert "the key 'role' appears twice" in error["message"]
    assert app.usage() == []


async def test_event_with_two_subjects_is_refused(app: App) -> None:
    raw = orjson.dumps(event("dup-subject", subject="first")).replace(
        b'"subject":"first"', b'"subject":"a","subject":"b"'
    )
    body = problem(await app.client.post("/api/v1/events", content=raw, headers=SINGLE))
    assert body["field"] == "subject"
    assert "the key 'subject' appears twice" in body["detail"]
    assert stored_events(app.database_url) == []


# -- item 5: integers beyond 64 bits and numbers that are not finite ---------------------------------------


@pytest.mark.parametrize(
    ("raw_value", "in_chat", "in_event"),
    [
        (b"18446744073709551617", "seed is an integer beyond 64 bits", "[0].data.n is an integer beyond 64 bits"),
        (b"-9223372036854775809", "seed is an integer beyond 64 bits", "[0].data.n is an integer beyond 64 bits"),
        (b"1e400", "1e400 is not a finite JSON number", "1e400 is not a finite JSON number"),
    ],
)
async def test_numbers_the_encoder_cannot_keep_are_refused(
    app: App, raw_value: bytes, in_chat: str, in_event: str
) -> None:
    raw = b'{"model": "demo", "messages": [{"role": "user", "content": "Hi"}], "seed": ' + raw_value + b"}"
    assert (
        in_chat in openai_error(await app.client.post("/v1/chat/completions", content=raw, headers=GATEWAY))["message"]
    )
    raw = orjson.dumps([event("big-int")]).replace(b'"n":1', b'"n":' + raw_value)
    assert in_event in problem(await app.client.post("/api/v1/events", content=raw, headers=BATCH))["detail"]
    assert app.usage() == []
    assert stored_events(app.database_url) == []


async def test_64_bit_integers_pass(app: App) -> None:
    raw = b'{"model": "demo", "messages": [{"role": "user", "content": "Hi"}], "seed": 18446744073709551615}'
    response = await app.client.post("/v1/chat/completions", content=raw, headers=GATEWAY)
    assert response.status_code == 200, response.text


# -- item 1: one bad event fails its own request only ------------------------------------------------------


async def test_a_deep_event_fails_only_its_own_request_among_200_concurrent(app: App) -> None:
    async def valid(n: int) -> int:
        response = await app.client.post("/api/v1/events", content=orjson.dumps([event(f"ok-{n}")]), headers=BATCH)
        return response.status_code

    async def bad() -> httpx.Response:
        raw = orjson.dumps([event("deep", data={"n": 1, "x": "PLACEHOLDER"})])
        raw = raw.replace(b'"PLACEHOLDER"', deep_bytes(300))
        return await app.client.post("/api/v1/events", content=raw, headers=BATCH)

    results = await asyncio.gather(*(valid(n) for n in range(100)), bad(), *(valid(n) for n in range(100, 200)))
    refused = results[100]
    assert isinstance(refused, httpx.Response)
    assert "nested too deeply" in problem(refused)["detail"]
    assert [r for r in results if not isinstance(r, httpx.Response)] == [204] * 200
    stored = stored_events(app.database_url)
    assert sorted(e.id for e in stored) == sorted(f"ok-{n}" for n in range(200))


async def test_an_event_the_encoder_refuses_fails_only_its_own_insert(app: App) -> None:
    """Below the API: an event whose data cannot be encoded (built in code, past the decoder) fails its own
    insert; the batches that would have shared its transaction are stored."""
    when = datetime(2026, 10, 5, 10, 15, tzinfo=UTC)
    store = app.runtime.store

    def one(event_id: str, data: dict[str, Any]) -> list[Event]:
        return [Event(id=event_id, source="code", type="api.call", subject="acme", time=when, data=data)]

    results = await asyncio.gather(
        *(store.insert_events(one(f"fine-{n}", {"n": n})) for n in range(20)),
        store.insert_events(one("unencodable", {"n": 2**70})),
        *(store.insert_events(one(f"fine-{n}", {"n": n})) for n in range(20, 40)),
        return_exceptions=True,
    )
    assert isinstance(results[20], TypeError)  # orjson.JSONEncodeError: "Integer exceeds 64-bit range"
    assert results[:20] + results[21:] == [1] * 40
    assert len(stored_events(app.database_url)) == 40


# -- items 3 and 7: event times and query bounds -----------------------------------------------------------


@pytest.mark.parametrize(
    ("time", "words"),
    [
        ("0001-01-01T00:00:00Z", "between 1970-01-01T00:00:00Z and 2200-01-01T00:00:00Z"),
        ("0001-01-01T00:00:00+01:00", "between 1970-01-01T00:00:00Z and 2200-01-01T00:00:00Z"),
        ("1969-12-31T23:59:59Z", "between 1970-01-01T00:00:00Z"),
        ("9999-12-31T23:59:59-01:00", "between 1970-01-01T00:00:00Z"),
        (0, "must be an RFC 3339 string"),
        (1764000000, "must be an RFC 3339 string"),
        (True, "must be an RFC 3339 string"),
        ({"t": 1}, "must be an RFC 3339 string"),
        ("2026-10-05T10:15:00", "with an offset"),
        ("yesterday", "RFC 3339"),
    ],
)
async def test_event_times_outside_the_window_or_not_strings_are_refused(app: App, time: Any, words: str) -> None:
    body = problem(
        await app.client.post("/api/v1/events", content=orjson.dumps([event("t", time=time)]), headers=BATCH)
    )
    assert body["field"] == "[0].time"
    assert words in body["detail"]
    assert stored_events(app.database_url) == []


async def test_the_window_edges_are_accepted(app: App) -> None:
    batch = [event("epoch", time="1970-01-01T00:00:00Z"), event("late-zone", time="1970-01-01T00:30:00+00:30")]
    response = await app.client.post("/api/v1/events", content=orjson.dumps(batch), headers=BATCH)
    assert response.status_code == 204, response.text


@pytest.mark.parametrize(
    ("name", "value"),
    [("from", "0001-01-01T00:00:00+01:00"), ("to", "9999-12-31T23:59:59-01:00"), ("from", "1900-01-01T00:00:00Z")],
)
async def test_query_bounds_outside_the_window_answer_400(app: App, name: str, value: str) -> None:
    for params in ({name: value}, {name: value, "windowSize": "DAY", "windowTimeZone": "Europe/Berlin"}):
        response = await app.client.get("/api/v1/meters/calls/query", params=params, headers=ADMIN)
        body = problem(response)
        assert body["field"] == name
        assert "between 1970-01-01T00:00:00Z and 2200-01-01T00:00:00Z" in body["detail"]
    response = await app.client.get(
        "/api/v1/customers/nobody/entitlements/nothing/value", params={"time": value}, headers=ADMIN
    )
    assert problem(response)["field"] == "time"


async def test_day_query_in_a_zone_over_events_stored_outside_the_window(app: App) -> None:
    """Events dated 0001-01-01 or 9999-12-31 stored before the window was enforced: a DAY query in a zone
    answers (they do not count) instead of overflowing."""
    old = [
        Event(id=f"legacy-{i}", source="legacy", type="api.call", subject="acme", time=moment, data={"n": 100})
        for i, moment in enumerate([datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)])
    ]
    assert await app.runtime.store.insert_events(old) == 2
    current = [event("now-1", time="2026-10-05T10:15:00Z", data={"n": 2}), event("now-2", time="2026-10-05T23:30:00Z")]
    assert (await app.client.post("/api/v1/events", content=orjson.dumps(current), headers=BATCH)).status_code == 204
    bounded = {"from": "2026-10-01T00:00:00Z", "to": "2026-10-10T00:00:00Z"}
    for zone, extra in (("Europe/Berlin", {}), ("Pacific/Kiritimati", bounded), ("Etc/GMT+12", bounded)):
        params = {"windowSize": "DAY", "windowTimeZone": zone, **extra}
        response = await app.client.get("/api/v1/meters/calls/query", params=params, headers=ADMIN)
        assert response.status_code == 200, response.text
        assert sum(float(row["value"]) for row in response.json()["data"]) == 3  # 2 + 1, the legacy 200 left out
    # Etc/GMT+12 is UTC-12, its days start at 12:00Z: 10:15Z on Oct 5 is Oct 4 there, 23:30Z is Oct 5
    response = await app.client.get(
        "/api/v1/meters/calls/query",
        params={"windowSize": "DAY", "windowTimeZone": "Etc/GMT+12", **bounded},
        headers=ADMIN,
    )
    assert [(row["windowStart"], row["value"]) for row in response.json()["data"] if row["value"] != "0"] == [
        ("2026-10-04T12:00:00Z", "2"),
        ("2026-10-05T12:00:00Z", "1"),
    ]
    response = await app.client.get("/api/v1/meters/calls/query", headers=ADMIN)
    assert response.status_code == 200, response.text


async def test_retries_of_an_event_without_time_are_plain_duplicates(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    stats = app.runtime.store.stats
    untimed = {key: value for key, value in event("retry").items() if key != "time"}
    for _ in range(3):
        response = await app.client.post("/api/v1/events", content=orjson.dumps(untimed), headers=SINGLE)
        assert response.status_code == 204, response.text
    await asyncio.gather(
        *(app.client.post("/api/v1/events", content=orjson.dumps([untimed, untimed]), headers=BATCH) for _ in range(5))
    )
    assert (stats.inserted_total, stats.duplicates_total, stats.conflicts_total) == (1, 12, 0)
    assert [r for r in caplog.records if "different content" in r.getMessage()] == []
    # a retry that changes what it says is still a conflict
    changed = {**untimed, "data": {"n": 5}}
    response = await app.client.post("/api/v1/events", content=orjson.dumps(changed), headers=SINGLE)
    assert response.status_code == 204
    assert stats.conflicts_total == 1
    assert len(stored_events(app.database_url)) == 1


@pytest.mark.parametrize("name", ["id", "source", "type", "subject"])
async def test_control_characters_in_event_keys_are_refused(app: App, name: str) -> None:
    """PostgreSQL text cannot hold U+0000: such a subject failed the whole shared transaction there."""
    for text in ("acme\u0000", "line\nbreak", "del\u007f"):
        response = await app.client.post(
            "/api/v1/events", content=orjson.dumps([event("c", **{name: text})]), headers=BATCH
        )
        body = problem(response)
        assert body["field"] == f"[0].{name}"
        assert ("NUL character" if "\u0000" in text else "control characters") in body["detail"]
    assert stored_events(app.database_url) == []


async def test_management_bodies_fastapi_decodes_pass_the_same_rules(app: App) -> None:
    """The consumers API reads its bodies through pydantic models: FastAPI's own decoding kept the last of two
    keys (a consumer created as "b" from `{"username": "a", "username": "b"}`)."""
    headers = {**ADMIN, "content-type": "application/json"}
    for raw, field in (
        (b'{"username": "a", "username": "b"}', "username"),
        (b'{"username": "n", "metadata": {"k": "v", "k": "w"}}', "k"),
        (b'{"username": "deep", "models": ' + deep_bytes(200) + b"}", "body"),
    ):
        assert problem(await app.client.post("/api/v1/consumers", content=raw, headers=headers))["field"] == field
    response = await app.client.get("/api/v1/consumers", headers=ADMIN)
    assert [c["username"] for c in response.json()] == ["acme-corp"]
