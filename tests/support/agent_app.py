"""A whole Tollway app in process (ASGI) from a config, on SQLite, for client-library tests; events read after stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.support.in_process import InProcess, in_process

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
KEY = "acme-secret-key"  # the quickstart's consumer key


@asynccontextmanager
async def tollway_app(directory: Path, config: dict[str, Any] | None = None) -> AsyncIterator[InProcess]:
    """Tollway on `config` (default: the quickstart file); its usage events are written when this exits."""
    async with in_process(directory, QUICKSTART if config is None else config) as started:
        yield started
