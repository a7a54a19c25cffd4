"""A database outage loses nothing: requests are still answered, usage waits and is stored once, later.

The gateway reaches PostgreSQL through a TCP proxy that the test takes down (connections refused,
open ones reset) and brings back, as when the database host goes away for a while.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support.fake_upstream import FakeOpenAI, Reply
from tests.support.net import plain_http, wait_until
from tests.support.scenario import SUBJECT, client, config_for, metered, prometheus_value, usage_block
from tests.support.stored import journal_segments, request_records, stored_events, tokens_by_type
from tests.support.tcp_proxy import TcpProxy
from tests.support.tollway_process import TollwayProcess

BEFORE = usage_block(100, 10, cached=64)
DURING = [usage_block(1200, 300, cached=1024, reasoning=128), usage_block(57, 11, cached=7), usage_block(9, 3)]
EVENTS_DURING = 4 + 4 + 3  # request + input + output (+ cache_read when cached), per request
MESSAGES: Any = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[TcpProxy]:
    target = urlsplit(postgres_url)
    assert target.hostname is not None
    proxy = TcpProxy(target.hostname, target.port or 5432).up()
    yield proxy
    proxy.close()


def through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(
        parts._replace(netloc=f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}")
    )


def metric(gateway: TollwayProcess, name: str) -> float:
    with plain_http(base_url=gateway.base_url, timeout=5) as http:
        return prometheus_value(http.get("/metrics").text, name)


def readyz(gateway: TollwayProcess, query: str = "") -> int:
    with plain_http(base_url=gateway.base_url, timeout=10) as http:
        return http.get("/readyz" + query).status_code


def test_database_outage_loses_nothing_and_stores_everything_once(
    workdir: Path, fake_openai: FakeOpenAI, postgres_url: str, proxy: TcpProxy
) -> None:
    gateway = TollwayProcess(workdir, config_for(fake_openai), database_url=through(proxy, postgres_url)).start()
    try:
        sdk = client(gateway)
        fake_openai.enqueue(Reply(usage=BEFORE), *(Reply(usage=u) for u in DURING))
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        wait_until(lambda: len(stored_events(postgres_url)) == 4)
        assert readyz(gateway) == 200
        assert readyz(gateway, "?storage=1") == 200

        proxy.down()
        # Storage health says so; readiness does not: the gateway still serves, so it stays in rotation.
        wait_until(lambda: readyz(gateway, "?storage=1") == 503)
        wait_until(lambda: metric(gateway, "tollway_storage_up") == 0)
        assert readyz(gateway) == 200
        # Requests are still answered, streamed and not.
        for usage in DURING[:2]:
            completion = sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            assert completion.usage is not None
            assert completion.usage.total_tokens == usage["total_tokens"]
        chunks = list(sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake upstream."

        # The usage waits: every event of the three calls is in the backlog and in the journal, none stored.
        assert metric(gateway, "tollway_usage_backlog_events") == EVENTS_DURING
        wait_until(lambda: metric(gateway, "tollway_usage_flush_failures_total") >= 1)
        assert metric(gateway, "tollway_usage_backlog_events") == EVENTS_DURING
        assert sum(journal_segments(workdir / "journal").values()) > 0
        with gateway.admin() as admin:
            outage_query = admin.get("/api/v1/meters/llm_tokens/query", params={"subject": SUBJECT})
        assert outage_query.status_code == 503
        assert outage_query.json()["status"] == 503
        assert readyz(gateway) == 200
        # Read straight from the database (not through the cut proxy) before it comes back: once it is up, the
        # next flush retry may store the backlog at any moment.
        assert len(stored_events(postgres_url)) == 4, "nothing reached the database during the outage"
        proxy.up()

        # The database is back: ready again, the backlog drains, each event stored exactly once.
        wait_until(lambda: readyz(gateway, "?storage=1") == 200)
        wait_until(lambda: metric(gateway, "tollway_usage_backlog_events") == 0, timeout_s=15)
        wait_until(lambda: metric(gateway, "tollway_storage_up") == 1)  # set by the key poll's next success
        events = stored_events(postgres_url)
        assert len(events) == 4 + EVENTS_DURING
        assert len(request_records(events)) == 4
        assert {e.data["status_code"] for e in request_records(events)} == {200}
        expected = metered([BEFORE, *DURING])
        assert expected == {"input": 36 + 176 + 50 + 9, "cache_read": 64 + 1024 + 7, "output": 10 + 300 + 11 + 3}
        assert tokens_by_type(events) == expected
        assert gateway.tokens_by_type(SUBJECT) == expected
        sdk.close()
    finally:
        gateway.stop()
    assert journal_segments(workdir / "journal") == {}
    assert len(stored_events(postgres_url)) == 4 + EVENTS_DURING


def test_sigterm_while_a_flush_hangs_on_the_database_still_stores_everything(
    workdir: Path, fake_openai: FakeOpenAI, postgres_url: str, proxy: TcpProxy
) -> None:
    """A graceful stop that interrupts a flush stuck on the database must not forget that flush's batch."""
    gateway = TollwayProcess(workdir, config_for(fake_openai), database_url=through(proxy, postgres_url)).start()
    try:
        proxy.stall()
        seen = proxy.bytes_seen
        fake_openai.enqueue(*(Reply(usage=u) for u in DURING))
        with client(gateway) as sdk:
            for _ in DURING:
                sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        wait_until(lambda: proxy.bytes_seen > seen)  # something waits on the database: the key poll, or the flusher
        wait_until(lambda: metric(gateway, "tollway_usage_flush_in_progress") == 1)  # the flusher, for sure
        assert metric(gateway, "tollway_usage_backlog_events") == EVENTS_DURING, "events in flight are backlog"

        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGTERM)
        # The shutdown interrupts the flush that hangs (its log line says so), then flushes again itself.
        wait_until(lambda: "interrupting a usage flush in progress" in gateway.log())
        # The hung connections die; the database is reachable again for the shutdown's own flush.
        proxy.down()
        proxy.resume()
        proxy.up()
        gateway.process.wait(20)
    finally:
        proxy.resume()
        gateway.stop()
    assert journal_segments(workdir / "journal") == {}, "a graceful stop leaves no journal segment behind"
    events = stored_events(postgres_url)
    assert len(events) == EVENTS_DURING
    assert tokens_by_type(events) == metered(DURING)
