"""Changes made through the management API are seen at once by the process that made them, and pushed to the
other processes (PostgreSQL LISTEN/NOTIFY) on top of the version polls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.whole_app import ADMIN, App, running
from tollway.adapters.sql.notify import PgChangeFeed, libpq_url
from tollway.changes import Changes

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(params=["sqlite", "postgres"])
async def app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[App]:
    settings: dict[str, Any] = {}
    if request.param == "postgres":
        settings["database_url"] = request.getfixturevalue("postgres_url")
    async with running(tmp_path, **settings) as started:
        yield started


async def test_a_key_created_through_the_api_works_on_the_next_request_and_a_revoked_one_fails(app: App) -> None:
    for _ in range(3):  # each time a fresh key, used the moment its creation is answered
        created = await app.client.post("/api/v1/consumers/acme-corp/keys", headers=ADMIN, json={})
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        answer = await app.client.post("/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=CHAT)
        assert answer.status_code == 200, answer.text
        revoked = await app.client.delete(f"/api/v1/consumers/acme-corp/keys/{created.json()['id']}", headers=ADMIN)
        assert revoked.status_code == 204, revoked.text
        refused = await app.client.post("/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=CHAT)
        assert refused.status_code == 401, refused.text
    assert app.runtime.changes is not None
    assert app.runtime.changes.local_total == 6


async def test_a_change_announced_by_one_process_reaches_the_others_feed(postgres_url: str) -> None:
    conninfo = libpq_url(postgres_url)
    assert conninfo is not None
    assert libpq_url("sqlite:///./tollway.db") is None
    seen: list[str] = []
    arrived = asyncio.Event()

    async def refreshed() -> None:
        seen.append("b")
        arrived.set()

    a = Changes([], PgChangeFeed(conninfo, channel="tollway_changes_test"))
    b_feed = PgChangeFeed(conninfo, channel="tollway_changes_test")
    b = Changes([refreshed], b_feed)
    b.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not arrived.is_set():  # until B's LISTEN is in place, an announcement can go unheard
            await a.changed_here()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 0.2)
            assert loop.time() < deadline, "no notification reached the other process"
        arrived.clear()
        started = loop.time()
        await a.changed_here()
        await asyncio.wait_for(arrived.wait(), 1.0)
        assert loop.time() - started < 1.0
        await b.changed_here()  # its own announcement does not come back to it
        await asyncio.sleep(0.2)
        assert b.remote_total == len(seen) - 1  # the refresh it ran itself is not a remote one
    finally:
        await a.stop()
        await b.stop()
