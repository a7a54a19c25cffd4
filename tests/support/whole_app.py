"""The whole Tollway app (gateway and management API) in process on SQLite, with its runtime at hand.

A simulator upstream (model `demo`, also under the alias `aliased`), one consumer key, and one event meter
(`calls`, SUM of `$.n` over `api.call` events)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.composed import ADMIN_TOKEN, CONSUMER_KEY
from tests.support.in_process import in_process
from tests.support.stored import journal_segments, stored_events
from tollway.runtime.process import Runtime

CONFIG = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [
        {"name": "demo", "targets": [{"provider": "local", "model": "demo"}]},
        {"name": "aliased", "targets": [{"provider": "local", "model": "demo"}]},  # the gateway rewrites `model`
    ],
    "consumers": [{"username": "acme-corp", "keys": [CONSUMER_KEY]}],
    "meters": [
        {"slug": "calls", "event_type": "api.call", "aggregation": "SUM", "value_property": "$.n"},
    ],
}
GATEWAY = {"authorization": f"Bearer {CONSUMER_KEY}", "content-type": "application/json"}
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class App:
    client: httpx.AsyncClient
    runtime: Runtime
    directory: Path
    asgi: Any

    @property
    def database_url(self) -> str:
        return self.runtime.settings.database_url

    def usage(self) -> list[Any]:
        """Gateway usage: journal bytes not yet stored, and llm.* events stored."""
        journal = [size for size in journal_segments(self.directory / "journal").values() if size]
        return journal + [e for e in stored_events(self.database_url) if e.type.startswith("llm.")]


@asynccontextmanager
async def running(directory: Path, **settings: Any) -> AsyncIterator[App]:
    """The app on SQLite in `directory`, or on the database_url given in `settings` (PostgreSQL)."""
    async with (
        in_process(directory, CONFIG, admin_token=ADMIN_TOKEN, **settings) as started,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=started.app), base_url="http://tollway") as client,
    ):
        yield App(client, started.runtime, directory, started.app)
