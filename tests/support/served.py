"""An ASGI app (the management app built in the test) served by uvicorn on loopback, in a thread, for clients
that need a real HTTP server (the openmeter SDK)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.support.net import bound_socket, wait_until


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve `app` until the block ends; yields its base URL. The port is bound before the server starts and held
    until it stops (`bound_socket`), so no other worker can take it."""
    sock = bound_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout_s=10)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
