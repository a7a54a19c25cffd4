"""The official openmeter SDK, unchanged, against Tollway's portal API: a portal token created, listed, used to
query a meter (only its subject's usage comes back) and invalidated."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import openmeter
import pytest
from corehttp.exceptions import HttpResponseError
from fastapi import FastAPI

from tests.support.served import served
from tollway.adapters.memory.portal import MemoryPortalTokenStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.clock import SystemClock
from tollway.metering.service import MeteringService
from tollway.portal.tokens import PortalTokens

TOKEN = "sdk-portal-admin-token"


def management_app() -> FastAPI:
    """The management app on memory stores, with the portal tokens."""
    clock = SystemClock()
    metering = MeteringService(MemoryEventStore(clock), clock)
    asyncio.run(metering.sync_meters([]))
    return create_management_app(
        metering=metering,
        admin_token=TOKEN,
        api_docs="open",
        portal=PortalTokens(MemoryPortalTokenStore(), clock),
    )


@pytest.fixture
def base_url() -> Iterator[str]:
    with served(management_app()) as url:
        yield url


def test_portal_tokens_through_the_openmeter_sdk(base_url: str) -> None:
    admin: Any = openmeter.Client(endpoint=base_url, token=TOKEN)
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

    customer: Any = openmeter.Client(endpoint=base_url, token=created.token)
    result = customer.portal.portal_meters.query_json("llm_tokens", group_by=["subject"])
    assert [(row.subject, row.value) for row in result.data] == [("acme-corp", 150)]

    admin.portal.portal_tokens.invalidate(subject="acme-corp")
    with pytest.raises(HttpResponseError) as caught:
        customer.portal.portal_meters.query_json("llm_tokens")
    assert caught.value.status_code == 401
