"""The supervisor of `tollway serve`'s storage process, over a stand-in child: restarted when it dies, stopped
with SIGTERM, and nothing started once stopping began."""

from __future__ import annotations

import os
import signal
import sys

from tests.support.net import wait_until
from tollway.cli.storage_process import StorageProcess

# Exits when its stdin closes or on SIGTERM (status 0), as `tollway worker --child` does.
CHILD = [
    sys.executable,
    "-c",
    "import signal, sys; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); sys.stdin.read()",
]


def test_a_dead_child_is_replaced_and_stop_ends_the_current_one() -> None:
    storage = StorageProcess(os.environ, command=lambda: CHILD, restart_min_s=0.05)
    storage.start()
    try:
        first = storage.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: storage.pid not in (None, first), timeout_s=20)
        assert storage.restarts == 1
        second = storage.pid
    finally:
        code = storage.stop(timeout_s=20)
    assert code in (0, -signal.SIGTERM), "stopped by SIGTERM (before its handler is set, SIGTERM's default)"
    assert second is not None
    try:
        os.kill(second, 0)
        raise AssertionError("the child outlived stop()")
    except ProcessLookupError:
        pass
    assert storage.pid == second, "nothing was started after stop()"


def test_stop_before_any_child_is_harmless() -> None:
    assert StorageProcess(os.environ, command=lambda: CHILD).stop() is None
