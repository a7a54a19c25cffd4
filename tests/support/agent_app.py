"""A whole Tollway app in process (ASGI) from a config, on SQLite, for client-library tests; events read after stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2

from tests.support.in_process import in_process

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
KEY = "acme-secret-key"  # the quickstart's consumer key


@dataclass
class InProcess:
    app: Any
    database: Path

    def client(self, **options: Any) -> httpx.AsyncClient:
        """An HTTP client that reaches the app in process (the caller closes it)."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://tollway", **options)

    def client2(self) -> httpx2.AsyncClient:
        """The same for SDKs built on httpx2 (anthropic)."""
        return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.app), base_url="http://tollway")


@asynccontextmanager
async def tollway_app(directory: Path, config: dict[str, Any] | None = None) -> AsyncIterator[InProcess]:
    """Tollway on `config` (default: the quickstart file); its usage events are written when this exits."""
    async with in_process(directory, QUICKSTART if config is None else config) as started:
        yield InProcess(started.app, directory / "tollway.db")
