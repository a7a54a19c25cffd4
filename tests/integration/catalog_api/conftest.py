"""The catalog management API in process (memory stores, a frozen clock), one app per test: `env` and its
client `api`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.catalog_api.helpers import NOW, TOKEN, Env
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FrozenClock(NOW)
    metering = MeteringService(MemoryEventStore(clock), clock)
    await metering.sync_meters([])  # the built-in meters: llm_tokens, llm_requests
    catalog = build_catalog(MemoryCatalogStore(), metering, clock)
    app = create_management_app(metering=metering, admin_token=TOKEN, catalog=catalog)
    transport = httpx.ASGITransport(app=app)
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://tollway", headers=headers) as client:
        yield Env(client, clock, metering, app)


@pytest.fixture
def api(env: Env) -> httpx.AsyncClient:
    return env.client
