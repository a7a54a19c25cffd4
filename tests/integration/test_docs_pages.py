"""/docs and /redoc work offline: every asset they load is served by Tollway itself."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService


def management() -> httpx.AsyncClient:
    clock = FrozenClock(datetime(2026, 12, 2, tzinfo=UTC))
    app = create_management_app(metering=MeteringService(MemoryEventStore(clock), clock), admin_token="t" * 16)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tollway.test")


async def test_swagger_ui_and_redoc_load_only_local_assets() -> None:
    async with management() as client:
        for page in ("/docs", "/redoc"):
            html = (await client.get(page)).text
            sources = re.findall(r'(?:src|href)="([^"]+)"', html)
            assert sources, page
            for source in sources:
                assert source.startswith("/"), f"{page} loads {source} from outside Tollway"
                asset = await client.get(source)
                assert asset.status_code == 200, source
                assert len(asset.content) > 1000, source
        assert "SwaggerUIBundle" in (await client.get("/docs-assets/swagger-ui-bundle.js")).text
