"""A whole Tollway (composition root, SQLite, journal) in process over a given config, for ASGI clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2

from tollway.adapters.journal.file import FileJournal
from tollway.asgi import TollwayApp
from tollway.bootstrap import build_app, build_runtime
from tollway.clock import Clock
from tollway.config.loader import load_config
from tollway.runtime.process import Runtime
from tollway.settings import Settings

ADDRESS = ("127.0.0.1", 50123)  # the client address the in-process transport reports


@dataclass
class InProcess:
    app: TollwayApp
    runtime: Runtime
    directory: Path

    @property
    def database(self) -> Path:
        """The SQLite file (where `settings` named no other database_url); its usage events are there once the app
        has stopped (usage flushed)."""
        return self.directory / "tollway.db"

    def http(self, address: tuple[str, int] = ADDRESS) -> httpx.AsyncClient:
        """An HTTP client for the app (close it: `async with`); `address` is the client address it reports."""
        transport = httpx.ASGITransport(app=self.app, client=address)
        return httpx.AsyncClient(transport=transport, base_url="http://tollway")

    def http2(self, address: tuple[str, int] = ADDRESS) -> httpx2.AsyncClient:
        """The same for the official SDKs (openai, anthropic), which are built on httpx2 (a fork of httpx)."""
        transport = httpx2.ASGITransport(app=self.app, client=address)
        return httpx2.AsyncClient(transport=transport, base_url="http://tollway")


@asynccontextmanager
async def in_process(
    directory: Path,
    config: dict[str, Any] | Path,
    *,
    clock: Clock | None = None,
    journal: FileJournal | None = None,
    **settings: Any,
) -> AsyncIterator[InProcess]:
    """Tollway over `config` (a config file, or a dict written as one), started; stopped (usage flushed) on exit.
    `clock`: the runtime's clock (a FrozenClock moves time for periods and windows). SQLite in `directory`
    unless `settings` name another database_url. `journal`: the usage journal to use (a test's, e.g. on a
    disk that fills up); by default one in `directory / "journal"`."""
    if isinstance(config, Path):
        config_path = config
    else:
        config_path = directory / "tollway.yaml"
        config_path.write_text(json.dumps(config))
    defaults: dict[str, Any] = {
        "config": str(config_path),
        "database_url": f"sqlite:///{directory / 'tollway.db'}",
        "journal_dir": str(directory / "journal"),
        "billing_worker": False,
    }
    chosen = Settings(**{**defaults, **settings})  # e.g. database_url=<a PostgreSQL schema>
    runtime = build_runtime(chosen, load_config(config_path, {}), clock, journal=journal)
    app = build_app(runtime)
    await runtime.start()
    try:
        yield InProcess(app, runtime, directory)
    finally:
        await runtime.stop()
