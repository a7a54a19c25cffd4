"""/docs and /redoc work offline: every asset they load is served by Tollway itself."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService

TOKEN = "t" * 16


def management(api_docs: str) -> httpx.AsyncClient:
    clock = FrozenClock(datetime(2026, 12, 2, tzinfo=UTC))
    metering = MeteringService(MemoryEventStore(clock), clock)
    app = create_management_app(metering=metering, admin_token=TOKEN, api_docs=api_docs)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tollway.test")


async def test_swagger_ui_and_redoc_load_only_local_assets() -> None:
    async with management("open") as client:
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


async def test_by_default_the_description_and_its_pages_take_the_admin_token() -> None:
    async with management("admin") as client:
        for page in ("/openapi.json", "/docs", "/redoc"):
            for headers in ({}, {"authorization": "Bearer " + "x" * 16}):
                refused = await client.get(page, headers=headers)
                assert refused.status_code == 401, (page, headers)
                assert refused.headers["content-type"] == "application/problem+json"
                assert "paths" not in refused.text
            assert (await client.get(page, headers={"authorization": f"Bearer {TOKEN}"})).status_code == 200
        spec = (await client.get("/openapi.json", headers={"authorization": f"Bearer {TOKEN}"})).json()
        assert "/api/v1/meters" in spec["paths"]


async def test_off_serves_none_of_them() -> None:
    async with management("off") as client:
        for page in ("/openapi.json", "/docs", "/redoc", "/docs-assets/swagger-ui-bundle.js"):
            assert (await client.get(page, headers={"authorization": f"Bearer {TOKEN}"})).status_code == 404, page
        # the API itself is unaffected
        assert (await client.get("/api/v1/meters", headers={"authorization": f"Bearer {TOKEN}"})).status_code == 200
