"""TOLLWAY_INGEST=external: the gateway only journals; `tollway worker` stores. Nothing lost, nothing twice."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import openai

from tests.support.closing import Closing
from tests.support.fake_upstream import FakeOpenAI
from tests.support.net import wait_until
from tests.support.scenario import KEY, gateway_config
from tests.support.stored import request_records, stored_events, tokens_by_type
from tests.support.tollway_process import TollwayProcess

STARTS_WITHIN_S = 60.0  # a wait that includes starting a `tollway worker` process


def start_worker(tollway: TollwayProcess, log: Path, started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tollway", "worker"],
            cwd=tollway.workdir,
            env=tollway.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    started.append(worker)
    return worker


def segments(tollway: TollwayProcess) -> list[str]:
    return sorted(p.name for p in (tollway.workdir / "journal").glob("*.jsonl"))


def test_worker_stores_what_the_gateway_hands_over(workdir: Path, fake_openai: FakeOpenAI, closing: Closing) -> None:
    tollway = TollwayProcess(workdir, gateway_config(fake_openai), env={"TOLLWAY_INGEST": "external"}).start()
    worker_log = workdir / "worker.log"
    workers: list[subprocess.Popen[bytes]] = []
    try:
        client = closing(openai.OpenAI(base_url=tollway.base_url + "/v1", api_key=KEY))
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        wait_until(lambda: len(segments(tollway)) >= 1)
        assert tollway.tokens_by_type("acme-corp") == {}, "nothing is stored without a worker"

        worker = start_worker(tollway, worker_log, workers)
        try:
            # The wait includes the worker process's start: allow for a busy machine (a parallel suite).
            wait_until(
                lambda: tollway.tokens_by_type("acme-corp") == {"input": 528, "cache_read": 3072, "output": 900},
                timeout_s=STARTS_WITHIN_S,
            )
            stream = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True
            )
            assert list(stream)
            wait_until(
                lambda: tollway.tokens_by_type("acme-corp") == {"input": 704, "cache_read": 4096, "output": 1200}
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) in (0, -signal.SIGTERM)

        # A worker killed mid-way leaves its claims for the next one; replays count once.
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        worker = start_worker(tollway, worker_log, workers)
        wait_until(lambda: tollway.tokens_by_type("acme-corp")["output"] == 1500, timeout_s=STARTS_WITHIN_S)
        worker.kill()
        worker.wait(10)
        worker = start_worker(tollway, worker_log, workers)
        tollway.stop()  # a graceful stop hands over its last segment
        wait_until(lambda: segments(tollway) == [], timeout_s=STARTS_WITHIN_S)
        events = stored_events(tollway.env["TOLLWAY_DATABASE_URL"])
        assert tokens_by_type(events) == {"input": 880, "cache_read": 5120, "output": 1500}
        assert len(request_records(events)) == 5
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
    finally:
        tollway.stop()
        for leftover in workers:
            if leftover.poll() is None:
                leftover.kill()
                leftover.wait(10)
        print(worker_log.read_text() if worker_log.exists() else "", file=sys.stderr)
