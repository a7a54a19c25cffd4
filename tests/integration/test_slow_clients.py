"""Unauthenticated and slow clients cannot hold memory or connections, over real sockets.

One uvicorn server in a thread, with `tollway serve`'s protocol (connection_guard.py, timeouts shortened) and
the management app: a wrong admin token is answered 401 at once while its announced 3 MB body is still being
sent (and the connection closed); a client that sends nothing, drips its headers, stalls its body or sends
oversized headers is cut off; ordinary requests, keep-alive and a body in two pieces still work.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import uvicorn

from tests.support.net import bound_socket, wait_until
from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.cli.connection_guard import GuardedHttpProtocol
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService

TOKEN = "admin-token-slow-clients-0123"
TIMEOUT_S = 0.5  # header and body idle timeouts of this server
MAX_HEADER_BYTES = 8192
EVENT = (
    b'{"specversion":"1.0","id":"e1","source":"t","type":"api-calls","subject":"acme",'
    b'"time":"2026-12-01T00:00:00Z","data":{}}'
)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    clock = FrozenClock(datetime(2026, 12, 2, tzinfo=UTC))
    app = create_management_app(metering=MeteringService(MemoryEventStore(clock), clock), admin_token=TOKEN)
    protocol = functools.partial(
        GuardedHttpProtocol, header_timeout_s=TIMEOUT_S, idle_timeout_s=TIMEOUT_S, max_header_bytes=MAX_HEADER_BYTES
    )
    config = uvicorn.Config(app, http=protocol, lifespan="off", log_level="critical", timeout_keep_alive=5)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    sock = bound_socket()
    sock.listen(64)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started)
    yield int(sock.getsockname()[1])
    server.should_exit = True
    thread.join(10)
    sock.close()


def connect(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    client.settimeout(5)
    return client


def read_until_closed(client: socket.socket, within_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    began = time.monotonic()
    received = b""
    client.settimeout(within_s)
    while True:
        chunk = client.recv(65536)
        if not chunk:
            return received, time.monotonic() - began
        received += chunk


def read_response(client: socket.socket) -> bytes:
    """One whole response (status line, headers and a Content-Length body), however the segments fall."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += client.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    length = int(lengths[0])
    while len(body) < length:
        body += client.recv(65536)
    return head + b"\r\n\r\n" + body


def headers(method: str, path: str, *lines: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: tollway", *lines, "", ""]).encode()


@pytest.mark.parametrize("authorization", ["Bearer wrong-token-0123456789", None])
def test_a_bad_token_is_refused_at_once_while_its_body_is_still_coming(port: int, authorization: str | None) -> None:
    with connect(port) as client:
        lines = ["Content-Type: application/cloudevents+json", "Content-Length: 3000000"]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        client.sendall(headers("POST", "/api/v1/events", *lines) + b"x" * 65536)  # 64 KiB of the 3 MB
        client.settimeout(10)  # generous for a loaded machine: the old code never answers at all
        first = client.recv(65536)  # no more of the body is sent: a server waiting for it answers nothing
        assert first.startswith(b"HTTP/1.1 401 "), first[:80]
        assert b"connection: close" in first.lower()
        rest, _ = read_until_closed(client, within_s=10)
    assert b"missing or invalid admin token" in first + rest


def test_a_body_that_stalls_is_cut_off_after_the_idle_timeout(port: int) -> None:
    with connect(port) as client:
        lines = [f"Authorization: Bearer {TOKEN}", "Content-Type: application/json", "Content-Length: 1000"]
        client.sendall(headers("POST", "/api/v1/meters", *lines) + b'{"slug": ')
        received, took = read_until_closed(client, within_s=5)
    assert received == b""  # closed without an answer: the request never completed
    assert TIMEOUT_S * 0.8 <= took <= TIMEOUT_S * 6, took


def test_headers_dripped_slowly_get_408_and_the_connection_closed(port: int) -> None:
    with connect(port) as client:
        client.sendall(b"GET /api/v1/meters HTTP/1.1\r\nHost: tollway\r\n")
        began = time.monotonic()
        answer, closed = b"", False
        for number in range(40):  # one header every 0.1 s: 4 s if nobody stops it
            try:
                client.sendall(f"X-Drip-{number}: {number}\r\n".encode())
                client.settimeout(0.1)
                chunk = client.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):  # closed while a header was on its way
                closed = True
                break
            answer += chunk
            if not chunk or answer.endswith(b"Request Timeout"):
                closed = closed or not chunk
                break
        took = time.monotonic() - began
    # the 408 is written just before the close; a header sent in that instant may turn the close into a reset
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout") or (closed and answer == b""), answer[:80]
    assert took <= TIMEOUT_S * 6, took


def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    with connect(port) as client:
        received, took = read_until_closed(client, within_s=5)
    assert received == b""
    assert took <= TIMEOUT_S * 6, took


def test_oversized_headers_are_refused_with_431(port: int) -> None:
    with connect(port) as client:
        # headers that keep coming past the limit (a whole request in one read is bounded by the read size)
        client.sendall(b"GET /api/v1/meters HTTP/1.1\r\nHost: tollway\r\nX-Big: " + b"a" * MAX_HEADER_BYTES)
        received, _ = read_until_closed(client, within_s=5)
    assert received.startswith(b"HTTP/1.1 431 Request Header Fields Too Large"), received[:80]


def test_ordinary_requests_keep_alive_and_a_body_in_two_pieces_still_work(port: int) -> None:
    with connect(port) as client:
        for _ in range(2):  # the same connection twice: the keep-alive path re-arms nothing wrongly
            client.sendall(headers("GET", "/api/v1/meters", f"Authorization: Bearer {TOKEN}"))
            answer = read_response(client)
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:80]
        lines = [f"Authorization: Bearer {TOKEN}", "Content-Type: application/cloudevents+json"]
        client.sendall(headers("POST", "/api/v1/events", *lines, f"Content-Length: {len(EVENT)}") + EVENT[:40])
        time.sleep(TIMEOUT_S / 2)  # a pause shorter than the idle timeout
        client.sendall(EVENT[40:])
        answer = client.recv(65536)  # a 204 has no body: its head is all there is
        assert answer.startswith(b"HTTP/1.1 204 "), answer[:120]
