"""The official openmeter SDK, unchanged, against Tollway's portal API: a portal token created, listed, used to
query a meter (only its subject's usage comes back) and invalidated."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import openmeter
import pytest
import uvicorn
from corehttp.exceptions import HttpResponseError

from tests.support.net import free_port, http_ok, wait_until
from tollway.adapters.memory.portal import MemoryPortalTokenStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.clock import SystemClock
from tollway.metering.service import MeteringService
from tollway.portal.tokens import PortalTokens

TOKEN = "sdk-portal-admin-token"


class Server:
    def __init__(self) -> None:
        clock = SystemClock()
        self.metering = MeteringService(MemoryEventStore(clock), clock)
        asyncio.run(self.metering.sync_meters([]))
        app = create_management_app(
            metering=self.metering,
            admin_token=TOKEN,
            api_docs="open",
            portal=PortalTokens(MemoryPortalTokenStore(), clock),
        )
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Server:
        self.thread.start()
        wait_until(lambda: http_ok(self.base_url + "/openapi.json"), timeout_s=10)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server().start()
    try:
        yield running
    finally:
        running.stop()


def test_portal_tokens_through_the_openmeter_sdk(server: Server) -> None:
    admin: Any = openmeter.Client(endpoint=server.base_url, token=TOKEN)
    at = datetime.now(UTC) - timedelta(minutes=1)
    admin.events.ingest_events(
        [
            {
                "specversion": "1.0",
                "id": f"p-{i}",
                "source": "sdk-portal",
                "type": "llm.tokens",
                "subject": subject,
                "time": at.isoformat(),
                "data": {"tokens": tokens, "type": "output", "model": "demo", "provider": "local", "status_code": 200},
            }
            for i, (subject, tokens) in enumerate([("acme-corp", 120), ("acme-corp", 30), ("globex", 9000)])
        ]
    )
    expires = datetime.now(UTC) + timedelta(days=2)
    created = admin.portal.portal_tokens.create({"subject": "acme-corp", "expiresAt": expires.isoformat()})
    assert created.subject == "acme-corp"
    assert created.token.startswith("twp_")
    assert created.expired is False
    listed = admin.portal.portal_tokens.list()
    assert [t.id for t in listed] == [created.id]

    customer: Any = openmeter.Client(endpoint=server.base_url, token=created.token)
    result = customer.portal.portal_meters.query_json("llm_tokens", group_by=["subject"])
    assert [(row.subject, row.value) for row in result.data] == [("acme-corp", 150)]

    admin.portal.portal_tokens.invalidate(subject="acme-corp")
    with pytest.raises(HttpResponseError) as caught:
        customer.portal.portal_meters.query_json("llm_tokens")
    assert caught.value.status_code == 401
