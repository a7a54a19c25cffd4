"""A whole Tollway app from the composition root (every management router mounted), in process, on SQLite."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from tollway.bootstrap import build_app, build_runtime
from tollway.config.loader import load_config
from tollway.settings import Settings

ADMIN_TOKEN = "tw-admin-0123456789abcdef"
CONSUMER_KEY = "acme-secret-key"
CONFIG = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [{"username": "acme-corp", "keys": [CONSUMER_KEY]}],
}


@dataclass
class Composed:
    client: httpx.AsyncClient
    database: Path
    routes: list[tuple[str, str]]  # (method, path) of every management route
    app: Any = None  # the whole ASGI app, for requests httpx cannot make (a body that never arrives)


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


@asynccontextmanager
async def composed_app(directory: Path, **settings: Any) -> AsyncIterator[Composed]:
    config_path = directory / "tollway.yaml"
    config_path.write_text(json.dumps(CONFIG))
    database = directory / "tollway.db"
    chosen = Settings(
        config=str(config_path),
        database_url=f"sqlite:///{database}",
        admin_token=ADMIN_TOKEN,
        journal_dir=str(directory / "journal"),
        stripe_webhook_secret="whsec_test",
        billing_worker=False,
        **settings,
    )
    runtime = build_runtime(chosen, load_config(config_path, {}))
    app = build_app(runtime)
    await runtime.start()
    management: Any = app._management
    routes = route_table(management.routes)
    # the walk misses nothing the API describes (a route hidden from the schema is still walked)
    described = {(m.upper(), p) for p, ops in management.openapi()["paths"].items() for m in ops}
    assert described <= set(routes), described - set(routes)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tollway") as client:
            yield Composed(client, database, routes, app)
    finally:
        await runtime.stop()


def database_digest(database: Path) -> str:
    """Every row of every table, in a stable order."""
    digest = hashlib.sha256()
    with sqlite3.connect(database) as connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for table in tables:
            for found in sorted(repr(r) for r in connection.execute(f'SELECT * FROM "{table}"')):
                digest.update(f"{table}:{found}\n".encode())
    return digest.hexdigest()
