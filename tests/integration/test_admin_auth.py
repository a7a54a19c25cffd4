"""Every management route refuses a bad admin token with 401 and changes nothing.

The routes come from the management app's own route table (the composition root's app, every optional
router mounted), so a route added later is checked without editing this test. For each one: a wrong
token, the right token with a character added, the right token truncated by one character and to its
first 8 characters, another scheme (Basic) and a gateway consumer key, each answer 401; the database
reads the same afterwards. Only the routes in PUBLIC answer without the admin token.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.composed import ADMIN_TOKEN as TOKEN
from tests.support.composed import CONSUMER_KEY, Composed, composed_app, database_digest

# Answered without the admin token, each for a stated reason. The API description and its pages (/openapi.json,
# /docs, /redoc) take the admin token by default (TOLLWAY_API_DOCS=admin), so they are checked with the rest.
PUBLIC = {
    ("POST", "/api/v1/stripe/webhook"),  # authenticated by its Stripe-Signature header instead
    ("GET", "/api/v1/portal/meters/{slug}/query"),  # by a portal token (tests/integration/test_dashboard_pages.py)
}
BAD_AUTHORIZATIONS = {
    "wrong token": f"Bearer {'x' * len(TOKEN)}",
    "token with a character added": f"Bearer {TOKEN}x",
    "token missing its last character": f"Bearer {TOKEN[:-1]}",
    "first 8 characters of the token": f"Bearer {TOKEN[:8]}",
    "token with its last character changed": f"Bearer {TOKEN[:-1]}g",
    "another scheme": f"Basic {TOKEN}",
    "a consumer key": f"Bearer {CONSUMER_KEY}",
    "no scheme": TOKEN,
}


@pytest.fixture
async def management(tmp_path: Path) -> AsyncIterator[Composed]:
    # hundreds of refusals from one address: the per-address throttle (test_auth_failures.py) is off here
    async with composed_app(tmp_path, auth_failure_limit=0) as composed:
        yield composed


def fill(path: str) -> str:
    """Path parameters get plausible values (an id that may or may not exist: auth comes first)."""
    return re.sub(r"\{[^}]+\}", "acme-corp", path)


async def test_every_management_route_refuses_bad_admin_tokens(management: Composed) -> None:
    assert set(management.routes) >= PUBLIC, PUBLIC - set(management.routes)  # no stale exemption
    guarded = [r for r in management.routes if r not in PUBLIC]
    assert {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc")} <= set(guarded)
    # the table holds the routes billing and identity depend on: a router left unmounted would hide them
    paths = {path for _, path in guarded}
    for expected in ("/api/v1/events", "/api/v1/meters", "/api/v1/consumers", "/api/v1/customers", "/api/v1/plans"):
        assert expected in paths, expected
    assert any(p.startswith("/api/v1/invoices") for p in paths)
    assert len(guarded) > 40, guarded
    before = database_digest(management.database)
    failures = []
    for method, path in guarded:
        for name, authorization in [*BAD_AUTHORIZATIONS.items(), ("no header", None)]:
            headers = {"content-type": "application/json"}
            if authorization is not None:
                headers["authorization"] = authorization
            body = b"{}" if method in ("POST", "PUT", "PATCH") else None
            response = await management.client.request(method, fill(path), headers=headers, content=body)
            if response.status_code != 401 or response.headers["content-type"] != "application/problem+json":
                failures.append(f"{method} {path} with {name}: {response.status_code} {response.text[:120]}")
    assert failures == []
    assert database_digest(management.database) == before


async def test_every_management_route_refuses_before_reading_the_body(management: Composed) -> None:
    """A 3 MB body announced with a bad token or none: 401 with `Connection: close`, and the app never asks
    for a byte of the body (the body limit used to buffer up to 4 MiB per request before the token check)."""
    read: list[str] = []
    failures = []
    for method, path in [r for r in management.routes if r not in PUBLIC]:
        for authorization in (b"Bearer wrong-token-0123456789", None):
            sent: list[dict[str, Any]] = []

            async def receive(where: str = f"{method} {path}") -> dict[str, Any]:
                read.append(where)
                return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

            async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
                sent.append(message)

            announced = [(b"content-type", b"application/json"), (b"content-length", b"3000000")]
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": method,
                "scheme": "http",
                "path": fill(path),
                "raw_path": fill(path).encode(),
                "query_string": b"",
                "root_path": "",
                "headers": announced + ([(b"authorization", authorization)] if authorization else []),
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8080),
            }
            await management.app(scope, receive, send)
            start = sent[0]
            if start["status"] != 401 or (b"connection", b"close") not in start["headers"]:
                failures.append(f"{method} {path}: {start['status']} {start['headers']}")
    assert failures == []
    assert read == []


async def test_the_right_token_passes_the_same_routes(management: Composed) -> None:
    """The control: the same requests with the right token are not refused as unauthenticated."""
    for method, path in management.routes:
        if method == "GET" and "{" not in path and path not in {p for _, p in PUBLIC}:
            response = await management.client.get(path, headers={"authorization": f"Bearer {TOKEN}"})
            assert response.status_code != 401, (path, response.text)
    response = await management.client.get("/api/v1/meters", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
