"""Loopback helpers for tests."""

from __future__ import annotations

import socket
import time

import httpx


def free_port() -> int:
    """A port that was free a moment ago. Another process (an xdist worker, an outgoing connection) may take it
    before it is bound again: where the server can be handed a socket, prefer `bound_socket`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bound_socket() -> socket.socket:
    """A socket bound to a loopback port the kernel chose, kept bound so that no one else can take the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def wait_until(predicate: object, timeout_s: float = 10.0, interval_s: float = 0.02) -> None:
    """Poll `predicate()` until it is truthy; fail the test after `timeout_s`."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:
            last_error = exc
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s (last error: {last_error!r})")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
