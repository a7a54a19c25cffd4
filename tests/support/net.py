"""Loopback helpers for tests."""

from __future__ import annotations

import socket
import time
from typing import Any

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


def plain_http(**options: Any) -> httpx.Client:
    """An httpx client for the plain-HTTP servers the tests run on loopback (Tollway, the fakes).

    A default `httpx.Client()` reads the whole CA bundle into a new SSL context: about 28 ms of CPU per client,
    also for a client that only ever speaks plain HTTP. A test that polls with a new client every 20 ms (a
    process becoming healthy, usage being stored) spends most of a core on that while the server it waits for
    competes for the same core. These clients never make a TLS connection, so they get httpx's context without
    certificates (about 0.3 ms); a `base_url` that is not plain HTTP is refused rather than reached unverified."""
    base_url = str(options.get("base_url", ""))
    if base_url and not base_url.startswith("http://"):
        raise ValueError(f"plain_http is for plain-HTTP loopback servers, not {base_url!r}")
    return httpx.Client(verify=False, **options)


def http_ok(url: str) -> bool:
    """Whether `url` (plain HTTP) answers 200 (within a second)."""
    if not url.startswith("http://"):
        raise ValueError(f"http_ok is for plain-HTTP loopback servers, not {url!r}")
    try:
        with plain_http(timeout=1.0) as client:
            return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False
