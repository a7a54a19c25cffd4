"""localstripe (a Stripe API emulator from PyPI), started as a child process on a free loopback port."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT_S = 20.0


def localstripe_installed() -> bool:
    return importlib.util.find_spec("localstripe") is not None


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepting(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class LocalStripe:
    """`python -m localstripe --port PORT --from-scratch` in `workdir`; its output goes to localstripe.log there."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_loopback_port()
        self.api_base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "localstripe.log"
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalStripe:
        """Start the process (returns at once; `ready` waits until it accepts connections)."""
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "localstripe", "--port", str(self.port), "--from-scratch"],
                cwd=self._workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    async def ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until localstripe accepts connections; RuntimeError with the end of its log if it does not."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                break
            if await asyncio.to_thread(_accepting, self.port):
                return
            await asyncio.sleep(0.1)
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:] if self.log_path.exists() else []
        raise RuntimeError(f"localstripe did not start on port {self.port}: {' '.join(tail) or 'no output'}")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
