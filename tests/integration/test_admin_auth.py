"""Every management route refuses a bad admin token with 401 and changes nothing.

The routes come from the management app's own route table (the composition root's app, every optional
router mounted), so a route added later is checked without editing this test. For each one: a wrong
token, the right token with a character added, the right token truncated by one character and to its
first 8 characters, another scheme (Basic) and a gateway consumer key, each answer 401; the database
reads the same afterwards. Only the routes in PUBLIC answer without the admin token.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from tollway.bootstrap import build_app, build_runtime
from tollway.config.loader import load_config
from tollway.settings import Settings

TOKEN = "tw-admin-0123456789abcdef"
CONSUMER_KEY = "acme-secret-key"
CONFIG = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [{"username": "acme-corp", "keys": [CONSUMER_KEY]}],
}
# Answered without the admin token, each for a stated reason.
PUBLIC = {
    ("GET", "/openapi.json"),  # the API description
    ("GET", "/docs"),  # documentation pages and their assets
    ("GET", "/redoc"),
    ("POST", "/api/v1/stripe/webhook"),  # authenticated by its Stripe-Signature header instead
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


@dataclass
class Management:
    client: httpx.AsyncClient
    database: Path
    routes: list[tuple[str, str]]


def route_table(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, str]]:
    """(method, path) of every route, walking into included routers (FastAPI keeps them as one route each)."""
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)  # fastapi >= 0.165: an included router
        if included is not None:
            context_prefix = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            found.extend(route_table(included.routes, prefix + context_prefix))
        elif isinstance(route, APIRoute | Route):
            found.extend((m, prefix + route.path) for m in sorted((route.methods or {"GET"}) - {"HEAD"}))
    return found


@pytest.fixture
async def management(tmp_path: Path) -> AsyncIterator[Management]:
    config_path = tmp_path / "tollway.yaml"
    config_path.write_text(json.dumps(CONFIG))
    database = tmp_path / "tollway.db"
    settings = Settings(
        config=str(config_path),
        database_url=f"sqlite:///{database}",
        admin_token=TOKEN,
        journal_dir=str(tmp_path / "journal"),
        stripe_webhook_secret="whsec_test",
        billing_worker=False,
    )
    runtime = build_runtime(settings, load_config(config_path, {}))
    app = build_app(runtime)
    await runtime.start()
    management_app = app._management
    routes = route_table(management_app.routes)  # type: ignore[attr-defined]
    # the walk misses nothing the API describes (a route hidden from the schema is still walked)
    described = {(m.upper(), p) for p, ops in management_app.openapi()["paths"].items() for m in ops}  # type: ignore[attr-defined]
    assert described <= set(routes), described - set(routes)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tollway") as client:
            yield Management(client, database, routes)
    finally:
        await runtime.stop()


def fill(path: str) -> str:
    """Path parameters get plausible values (an id that may or may not exist: auth comes first)."""
    return re.sub(r"\{[^}]+\}", "acme-corp", path)


def database_digest(database: Path) -> str:
    """Every row of every table, in a stable order."""
    digest = hashlib.sha256()
    with sqlite3.connect(database) as connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for table in tables:
            for found in sorted(repr(r) for r in connection.execute(f'SELECT * FROM "{table}"')):
                digest.update(f"{table}:{found}\n".encode())
    return digest.hexdigest()


async def test_every_management_route_refuses_bad_admin_tokens(management: Management) -> None:
    assert set(management.routes) >= PUBLIC, PUBLIC - set(management.routes)  # no stale exemption
    guarded = [r for r in management.routes if r not in PUBLIC and not r[1].startswith("/docs")]
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


async def test_the_right_token_passes_the_same_routes(management: Management) -> None:
    """The control: the same requests with the right token are not refused as unauthenticated."""
    for method, path in management.routes:
        if method == "GET" and "{" not in path and path not in {p for _, p in PUBLIC}:
            response = await management.client.get(path, headers={"authorization": f"Bearer {TOKEN}"})
            assert response.status_code != 401, (path, response.text)
    response = await management.client.get("/api/v1/meters", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
