"""Changes made through the management API are seen at once by the process that made them, and pushed to the
other processes (PostgreSQL LISTEN/NOTIFY, or Redis pub/sub on SQLite) on top of the version polls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_URL
from tests.support.whole_app import ADMIN, App, running
from tollway.adapters.redis.changes import RedisChangeFeed
from tollway.adapters.sql.notify import PgChangeFeed, libpq_url
from tollway.changes import ChangeFeed, Changes

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


@pytest.fixture(params=["postgres", "redis"])
def feeds(request: pytest.FixtureRequest) -> Callable[[], ChangeFeed]:
    """Feeds of one channel, as separate processes would open them."""
    if request.param == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        return lambda: RedisChangeFeed(REDIS_URL, prefix=prefix)
    conninfo = libpq_url(request.getfixturevalue("postgres_url"))
    assert conninfo is not None
    assert libpq_url("sqlite:///./tollway.db") is None
    return lambda: PgChangeFeed(conninfo, channel="tollway_changes_test")


async def test_a_change_announced_by_one_process_reaches_the_others_feed(feeds: Callable[[], ChangeFeed]) -> None:
    seen: list[str] = []
    arrived = asyncio.Event()

    async def refreshed() -> None:
        seen.append("b")
        arrived.set()

    a = Changes([], feeds())
    b = Changes([refreshed], feeds())
    b.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not arrived.is_set():  # until B's subscription is in place, an announcement can go unheard
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


async def test_on_sqlite_with_redis_a_key_created_on_one_process_works_on_another_within_a_second(
    tmp_path: Path, redis_prefix: str
) -> None:
    shared = {
        "database_url": f"sqlite:///{tmp_path / 'tollway.db'}",
        "redis_url": REDIS_URL,
        "routing_redis_prefix": redis_prefix,
        "spend_redis_prefix": redis_prefix + "spend:",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with running(tmp_path / "a", **shared) as a, running(tmp_path / "b", **shared) as b:
        assert b.runtime.changes is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        warmed = 0
        while b.runtime.changes.remote_total == 0:  # until B's subscription is in place
            warmed += 1
            made = await a.client.post("/api/v1/consumers", headers=ADMIN, json={"username": f"warm-{warmed}"})
            assert made.status_code == 201, made.text
            await asyncio.sleep(0.05)
            assert loop.time() < deadline, "B never heard of A's changes"
        heard = b.runtime.changes.remote_total
        created = await a.client.post("/api/v1/consumers/acme-corp/keys", headers=ADMIN, json={})
        assert created.status_code == 201, created.text
        started = loop.time()
        headers = {"authorization": f"Bearer {created.json()['key']}"}
        assert (await a.client.post("/v1/chat/completions", headers=headers, json=CHAT)).status_code == 200
        while (await b.client.post("/v1/chat/completions", headers=headers, json=CHAT)).status_code == 401:
            assert loop.time() - started < 1.0, "the key did not reach B within 1 s"
            await asyncio.sleep(0.01)
        assert b.runtime.changes.remote_total > heard  # announced through Redis (the poll counts no change)


async def test_a_redis_feed_that_cannot_reach_redis_never_fails_the_change(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tollway.changes")
    refreshed: list[int] = []

    async def refresh() -> None:
        refreshed.append(1)

    changes = Changes([refresh], RedisChangeFeed("redis://127.0.0.1:1/0", prefix="tollway-test:none:"))
    changes.start()
    try:
        started = asyncio.get_running_loop().time()
        await changes.changed_here()  # applied here; the announcement fails, logged, the others' polls catch up
        assert asyncio.get_running_loop().time() - started < 1.0
        assert refreshed == [1]
        assert "PUBLISH failed" in caplog.text
    finally:
        await changes.stop()
