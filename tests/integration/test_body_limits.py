"""Body limits hold however the body is sent: a chunked upload (no Content-Length) over the limit answers 413
and stores nothing, on every management route that takes a body and on every gateway endpoint.

The management routes come from the app's own route table; the body over the limit is valid JSON (the
events API gets a valid CloudEvents batch), so a route that read it without a limit would act on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests.support.composed import ADMIN_TOKEN, CONSUMER_KEY, Composed, composed_app, database_digest
from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.errors import install_error_handlers
from tollway.api.events import events_router
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService

MANAGEMENT_LIMIT = 4 * 1024 * 1024  # the documented management body limit
GATEWAY_LIMIT = 256 * 1024  # TOLLWAY_MAX_BODY_BYTES for this test
CHUNK = 64 * 1024
GATEWAY_ENDPOINTS = [
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/messages",
    "/v1/messages/count_tokens",
]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Composed]:
    async with composed_app(tmp_path, max_body_bytes=GATEWAY_LIMIT) as composed:
        yield composed


def padded_json(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    head, tail = b'{"model":"demo","pad":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def events_batch(size: int, *, over: bool) -> bytes:
    """A valid CloudEvents batch just over (or just within) `size` bytes."""
    event = {"specversion": "1.0", "source": "limits", "type": "api.call", "subject": "acme", "data": {"p": "x" * 999}}
    each = len(orjson.dumps({**event, "id": "e00000"})) + 1
    count = size // each + 1 if over else size // each - 1
    body = orjson.dumps([{**event, "id": f"e{n:05}"} for n in range(count)])
    assert (len(body) > size) is over
    return body


async def chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]


async def test_chunked_bodies_over_the_limit_are_refused_everywhere(app: Composed) -> None:
    before = database_digest(app.database)
    management = [(m, p) for m, p in app.routes if m in ("POST", "PUT", "PATCH")]
    assert ("POST", "/api/v1/events") in management
    assert len(management) > 15, management
    failures = []
    for method, path in management:
        url = path.replace("{", "").replace("}", "")  # any value: the limit comes before routing decisions
        body = (
            events_batch(MANAGEMENT_LIMIT, over=True) if path == "/api/v1/events" else padded_json(MANAGEMENT_LIMIT + 1)
        )
        headers = {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"}
        if path == "/api/v1/stripe/webhook":
            headers["stripe-signature"] = "t=1,v1=00"
        response = await app.client.request(method, url, headers=headers, content=chunks(body))
        assert "content-length" not in response.request.headers
        if response.status_code != 413 or response.json()["status"] != 413:
            failures.append(f"{method} {path}: {response.status_code} {response.text[:120]}")
    for path in GATEWAY_ENDPOINTS:
        headers = {
            "authorization": f"Bearer {CONSUMER_KEY}",
            "x-api-key": CONSUMER_KEY,
            "anthropic-version": "2023-06-01",
        }
        response = await app.client.post(path, headers=headers, content=chunks(padded_json(GATEWAY_LIMIT + 1)))
        assert "content-length" not in response.request.headers
        if response.status_code != 413:
            failures.append(f"POST {path}: {response.status_code} {response.text[:120]}")
    assert failures == []
    assert database_digest(app.database) == before


async def test_chunked_bodies_within_the_limit_are_read_whole(app: Composed) -> None:
    """The control: the same transfer mode within the limit is accepted and stored."""
    body = events_batch(MANAGEMENT_LIMIT, over=False)
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"}
    response = await app.client.post("/api/v1/events", headers=headers, content=chunks(body))
    assert response.status_code == 204, response.text
    assert response.headers["tollway-events-stored"] == str(len(orjson.loads(body)))
    exact = padded_json(GATEWAY_LIMIT)
    gateway_headers = {"authorization": f"Bearer {CONSUMER_KEY}", "content-type": "application/json"}
    response = await app.client.post("/v1/chat/completions", headers=gateway_headers, content=chunks(exact))
    assert response.status_code != 413  # at the limit: read whole (then refused for having no messages)


async def test_events_api_limits_a_chunked_body_on_its_own() -> None:
    """The events router's own read-time check, without the management app's BodyLimit in front."""
    clock = FrozenClock(datetime(2026, 5, 1, tzinfo=UTC))
    store = MemoryEventStore(clock)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(events_router(MeteringService(store, clock), max_body_bytes=20_000))
    body = events_batch(20_000, over=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post(
            "/api/v1/events", headers={"content-type": "application/json"}, content=chunks(body)
        )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    assert await store.list_subjects() == []  # nothing stored
