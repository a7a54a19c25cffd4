"""Run Tollway as a real process (`python -m tollway serve`) on a loopback port, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.net import free_port, http_ok, plain_http, wait_until

ADMIN_TOKEN = "test-admin-token"
SUBJECT = "acme-corp"  # the consumer the tests' configs declare (tests/support/scenario.py)


class PortTaken(Exception):
    """The port chosen for the process was taken before the process could bind it."""


class TollwayProcess:
    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        *,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.args = args  # more `tollway serve` options, e.g. ("--workers", "2")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "tollway.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / f"tollway-{self.port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")},
            "TOLLWAY_DATABASE_URL": database_url or f"sqlite:///{workdir / 'tollway.db'}",
            "TOLLWAY_JOURNAL_DIR": str(workdir / "journal"),
            "TOLLWAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "TOLLWAY_FLUSH_INTERVAL_S": "0.05",
            # In process: one Python process per test server instead of two (a storage process each); the
            # default (a supervised storage process) has its own tests in test_storage_process.py.
            "TOLLWAY_INGEST": "inline",
            "TOLLWAY_LOG_LEVEL": "info",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> TollwayProcess:
        """Start and wait for /healthz. The port was free when chosen, but another test process may bind it first:
        on "port ... is in use" the start is retried on a new port (base_url follows)."""
        for attempt in range(3):
            try:
                return self._start(timeout_s)
            except PortTaken:
                if attempt == 2:
                    raise
                self.port = free_port()
                self.base_url = f"http://127.0.0.1:{self.port}"
                self.log_path = self.workdir / f"tollway-{self.port}.log"
        raise AssertionError("unreachable")

    def _start(self, timeout_s: float) -> TollwayProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "tollway", "serve", "--config", str(self.config_path)),
                    *("--port", str(self.port), *self.args),
                ],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self.process
        try:
            # Stop waiting as soon as the process has exited: it will not become healthy.
            wait_until(lambda: process.poll() is not None or http_ok(self.base_url + "/healthz"), timeout_s)
        except AssertionError:
            self.stop()
            raise AssertionError(f"tollway did not start within {timeout_s}s:\n{self.log()}") from None
        if process.poll() is not None:
            if f"port {self.port} is in use" in self.log():
                raise PortTaken(self.port)
            raise AssertionError(f"tollway exited with {process.returncode}:\n{self.log()}")
        return self

    def _alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"tollway exited with {self.process.returncode}:\n{self.log()}")
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 20.0) -> int:
        """Graceful stop (SIGTERM): the gateway flushes its usage before it exits."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def admin(self) -> httpx.Client:
        return plain_http(base_url=self.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)

    def query(self, meter: str = "llm_tokens", **params: Any) -> dict[str, Any]:
        with self.admin() as client:
            response = client.get(f"/api/v1/meters/{meter}/query", params=params)
            response.raise_for_status()
            return response.json()  # type: ignore[no-any-return]

    def tokens_by_type(self, subject: str, **params: Any) -> dict[str, int]:
        """Metered tokens per type for `subject`, once the pipeline has stored them."""
        data = self.query("llm_tokens", subject=subject, groupBy="type", **params)["data"]
        return {row["groupBy"]["type"]: int(row["value"]) for row in data}

    def expect_tokens(self, expected: dict[str, int], subject: str = SUBJECT, timeout_s: float = 10.0) -> None:
        """Wait until the metered tokens per type of `subject` are exactly `expected` (fail after `timeout_s`)."""
        wait_until(lambda: self.tokens_by_type(subject) == expected, timeout_s=timeout_s)
