"""The scale-out deployment as processes (compose.yaml's twin, for a machine without docker): two `tollway serve`
gateways and two `tollway worker`s on one PostgreSQL and one Redis, each gateway journaling into its own directory
under a shared journal root that both workers drain.

One scenario, in order: a key created on gateway A works on A at once and on B within a second; a database outage
leaves both gateways ready and answering; then streams run
on both gateways and, mid-load, gateway A and worker 1 are killed with SIGKILL and nothing is restarted. Worker 2
alone must store every answered call exactly once, and A's calls in flight as interrupted, from A's journal.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import pytest

from tests.conftest import REDIS_URL
from tests.support.fake_upstream import FakeOpenAI, Reply
from tests.support.net import plain_http, wait_until
from tests.support.scenario import KEY, SUBJECT, config_for, prometheus_value
from tests.support.stored import StoredEvent, request_records, stored_events
from tests.support.tcp_proxy import TcpProxy
from tests.support.tollway_process import TollwayProcess

PIECES = 12
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
CONCURRENCY = 6  # streams at once on each gateway
KILL_AFTER = 12  # streams A has answered when it is killed


class Worker:
    def __init__(self, root: Path, database_url: str, name: str) -> None:
        self.log_path = root.parent / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")}
        env |= {
            "TOLLWAY_DATABASE_URL": database_url,
            "TOLLWAY_JOURNAL_DIR": str(root),
            "TOLLWAY_FLUSH_INTERVAL_S": "0.05",
            "TOLLWAY_LOG_LEVEL": "info",
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tollway", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def database(postgres_url: str) -> Iterator[TcpProxy]:
    """Every process reaches PostgreSQL through this proxy, which the test takes down for an outage."""
    target = urlsplit(postgres_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432).up()
    yield proxy
    proxy.close()


def through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    where = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{where}" if userinfo else where))


@pytest.fixture
def topology(
    workdir: Path, fake_openai: FakeOpenAI, postgres_url: str, redis_prefix: str, database: TcpProxy
) -> Iterator[tuple[TollwayProcess, TollwayProcess, list[Worker], Path]]:
    root = workdir / "journal-root"
    started: list[TollwayProcess] = []
    workers: list[Worker] = []
    postgres_url = through(database, postgres_url)
    try:
        for name in ("a", "b"):
            (workdir / name).mkdir()
            env = {
                "TOLLWAY_INGEST": "external",
                "TOLLWAY_JOURNAL_DIR": str(root / name),
                "TOLLWAY_REDIS_URL": REDIS_URL,
                "TOLLWAY_SPEND_REDIS_PREFIX": redis_prefix,
                "TOLLWAY_ROUTING_REDIS_PREFIX": redis_prefix + "routing:",
                "TOLLWAY_BILLING_WORKER": "false",
                "TOLLWAY_AUTH_FAILURE_LIMIT": "0",  # B answers 401 until the key arrives: no brute-force 429
            }
            gateway = TollwayProcess(workdir / name, config_for(fake_openai), database_url=postgres_url, env=env)
            started.append(gateway.start())
        workers = [Worker(root, postgres_url, f"worker{n}") for n in (1, 2)]
        yield started[0], started[1], workers, root
    finally:
        for gateway in started:
            gateway.stop()
        for worker in workers:
            worker.stop()


def metric(gateway: TollwayProcess, name: str) -> float:
    with plain_http(base_url=gateway.base_url, timeout=5) as http:
        return prometheus_value(http.get("/metrics").text, name)


def ready(gateway: TollwayProcess, query: str = "") -> int:
    with plain_http(base_url=gateway.base_url, timeout=10) as http:
        return http.get("/readyz" + query).status_code


def status_with(gateway: TollwayProcess, key: str, answered: set[str]) -> int:
    body = {**BODY, "stream": False}
    headers = {"Authorization": f"Bearer {key}"}
    with plain_http(base_url=gateway.base_url, timeout=10) as http:
        response = http.post("/v1/chat/completions", json=body, headers=headers)
    if response.status_code == 200:
        answered.add(response.headers["x-request-id"])
    return response.status_code


class Load:
    """Streams on one gateway, CONCURRENCY at a time: who was answered in full, and who started."""

    def __init__(self, gateway: TollwayProcess) -> None:
        self.gateway = gateway
        self.answered: list[str] = []
        self.started: list[str] = []
        self.stop = False

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=self.gateway.base_url, headers=headers, timeout=30) as http:
            await asyncio.gather(*(self._loop(http) for _ in range(CONCURRENCY)))

    async def _loop(self, http: httpx.AsyncClient) -> None:
        while not self.stop:
            try:
                async with http.stream("POST", "/v1/chat/completions", json=BODY) as response:
                    assert response.status_code == 200
                    request_id = response.headers["x-request-id"]
                    self.started.append(request_id)
                    lines = [line async for line in response.aiter_lines()]
                contents = [orjson.loads(line[6:]) for line in lines if line.startswith("data: {")]
                if "data: [DONE]" in lines and len(contents) >= PIECES:  # the whole answer
                    self.answered.append(request_id)
            except httpx.HTTPError:
                return  # this gateway is gone


async def test_two_gateways_two_workers_kill_a_gateway_and_a_worker_mid_load(
    topology: tuple[TollwayProcess, TollwayProcess, list[Worker], Path],
    fake_openai: FakeOpenAI,
    postgres_url: str,
    database: TcpProxy,
) -> None:
    a, b, workers, root = topology
    for gateway in (a, b):  # breaker moves and cool-downs shared through Redis (test_routing_share has the rest)
        wait_until(lambda gateway=gateway: metric(gateway, "tollway_routing_shared") == 1, timeout_s=10)
    # A key created on A works on A at once, and on B within a second (LISTEN/NOTIFY; the poll underneath).
    with a.admin() as admin:
        created = admin.post(f"/api/v1/consumers/{SUBJECT}/keys", json={"name": "fresh"})
    assert created.status_code == 201, created.text
    fresh = created.json()["key"]
    with_fresh: set[str] = set()
    assert status_with(a, fresh, with_fresh) == 200
    since = time.monotonic()
    wait_until(lambda: status_with(b, fresh, with_fresh) == 200, timeout_s=1.0, interval_s=0.01)
    propagation_s = time.monotonic() - since
    assert propagation_s < 1.0

    # A database outage: both gateways stay ready (in the load balancer's rotation) and keep answering.
    database.down()
    await asyncio.to_thread(wait_until, lambda: ready(a, "?storage=1") == 503, 10)
    during: set[str] = set()
    for gateway in (a, b, a, b):
        assert status_with(gateway, KEY, during) == 200
    assert (ready(a), ready(b)) == (200, 200)
    database.up()

    fake_openai.default = Reply(stream_pieces=[f"w{i}" for i in range(PIECES)], chunk_delay_s=0.02)
    on_a, on_b = Load(a), Load(b)
    loads = [asyncio.create_task(on_a.run()), asyncio.create_task(on_b.run())]
    deadline = time.monotonic() + 60
    # kill A while one of its streams is under way (between a stream's end and the next one's headers, none is)
    while len(on_a.answered) < KILL_AFTER or len(on_b.answered) < KILL_AFTER or len(on_a.started) <= len(on_a.answered):
        assert time.monotonic() < deadline, (len(on_a.answered), len(on_b.answered))
        await asyncio.sleep(0.001)
    in_flight_on_a = len(on_a.started) - len(on_a.answered)
    await asyncio.to_thread(a.kill)  # with streams in flight
    workers[0].process.kill()
    workers[0].process.wait(10)
    await asyncio.sleep(0.5)  # B keeps serving meanwhile
    on_b.stop = True
    await asyncio.wait_for(asyncio.gather(*loads), 30)
    assert in_flight_on_a >= 1, "A had calls in flight at the kill"

    answered = {*on_a.answered, *on_b.answered, *during}
    cut_on_a = set(on_a.started) - set(on_a.answered)

    def records() -> list[StoredEvent]:
        return request_records(stored_events(postgres_url))

    def all_stored() -> bool:
        ids = {r.request_id for r in records()}
        return answered <= ids and cut_on_a <= ids

    # worker 2 alone, nothing restarted: A's directory (its last segment, unlocked by its death) included
    await asyncio.to_thread(wait_until, all_stored, 30)
    stored = records()
    ids = [r.request_id for r in stored]
    assert len(ids) == len(set(ids)), "each call stored exactly once"
    by_id = {r.request_id: r.data for r in stored}
    assert all(by_id[i]["status_code"] == 200 and "interrupted" not in by_id[i] for i in answered)
    interrupted = {i for i in cut_on_a if by_id[i].get("interrupted")}
    assert interrupted, "A's calls in flight are recorded as interrupted"
    assert with_fresh <= set(ids)
    a_prefix = on_a.started[0][:-8]  # request ids: req_<process nonce><counter>
    # besides: calls A had begun whose answer never reached its client (interrupted, or done as the kill came)
    assert {i for i in set(ids) - answered - cut_on_a - with_fresh if not i.startswith(a_prefix)} == set()
    b.stop()  # hands its last segment over
    await asyncio.to_thread(
        wait_until, lambda: not [p for p in root.rglob("*") if p.is_file() and ".probe" not in p.name], 20
    )
    assert workers[1].process.poll() is None, "worker 2 still runs"
