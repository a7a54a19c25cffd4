"""The storage process `tollway serve` starts by default (TOLLWAY_INGEST=process).

The gateway process (or each of `--workers N`) only journals usage and hands a segment over every
flush interval; one child process, `tollway worker --child`, stores the segments and rolls them up,
so the database's CPU and its write lock never run on the request path. The supervisor here starts
it, restarts it when it dies (nothing is lost meanwhile: handed-over segments wait on disk for the
next claim), and stops it after the gateway stopped, so its last pass stores the last segment.

The child runs in its own session (a Ctrl-C in a terminal reaches the gateway only; the gateway
stops the child once its last segment is handed over) and watches its stdin: the pipe closes when
the gateway dies, even of a SIGKILL, and the child then stores what is left and exits.

The child is background work: it lowers its own priority at start (`TOLLWAY_STORAGE_NICE`, niceness 10 by
default, `yield_cpu`), so that on a core it shares with the gateway a request never waits behind a batch
being stored (the tail at low concurrency), while under saturation it still gets a share of the CPU
(about a tenth against a busy gateway at niceness 10) and drains its backlog as soon as the load eases.
It wakes once per flush interval (`TOLLWAY_FLUSH_INTERVAL_S`), never per call: the gateway hands over
one journal segment per interval, the child stores each segment's calls in one transaction.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("tollway.storage")

RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0
STOP_TIMEOUT_S = 30.0
STABLE_S = 60.0  # a child that ran this long resets the restart back-off


def yield_cpu(nice: int) -> int:
    """Lower this process's priority to niceness `nice` (never raise it: a parent started with a higher
    niceness keeps it). The niceness it runs at."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > current:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError as exc:  # a sandbox may refuse it: the child still stores, at the gateway's priority
            log.warning("storage process: cannot lower its priority to %d: %s", nice, exc)
            return current
        return nice
    return current


def child_command() -> list[str]:
    return [sys.executable, "-m", "tollway", "worker", "--child"]


class StorageProcess:
    """Keep one `tollway worker --child` running until `stop()`."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        command: Callable[[], list[str]] = child_command,
        restart_min_s: float = RESTART_MIN_S,
    ) -> None:
        self._env = dict(env)
        self._command = command
        self._restart_min_s = restart_min_s
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="tollway-storage-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            self._process = subprocess.Popen(
                self._command(), env=self._env, stdin=subprocess.PIPE, start_new_session=True
            )

    def _supervise(self) -> None:
        delay = self._restart_min_s
        while True:
            with self._lock:
                process = self._process
            if process is not None:
                started = time.monotonic()
                code = process.wait()
                if self._stopping.is_set():
                    return
                if process.stdin is not None:
                    process.stdin.close()
                if time.monotonic() - started >= STABLE_S:
                    delay = self._restart_min_s
                log.error("storage process %d exited with %s; restarting in %.1fs", process.pid, code, delay)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, RESTART_MAX_S)
            self.restarts += 1
            try:
                self._spawn()
            except OSError as exc:
                log.error("cannot start the storage process: %s", exc)
                with self._lock:
                    self._process = None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """Let the child store what the gateway handed over last, and wait for it. Its exit status."""
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.error(
                "storage process %d did not stop within %.0fs: killed (the journal keeps its work)",
                process.pid,
                timeout_s,
            )
            process.kill()
            code = process.wait()
        if process.stdin is not None:
            process.stdin.close()
        if self._thread is not None:
            self._thread.join(5)
        return code
