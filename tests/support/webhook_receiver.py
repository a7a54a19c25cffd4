"""A real HTTP webhook receiver on loopback (a thread): it verifies each delivery with the `standardwebhooks`
library, unchanged, records what came, and answers with scripted statuses (then 200)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool  # the library's verify() passed (signature and timestamp)
    status: int  # what the receiver answered
    error: str = ""


class Receiver:
    def __init__(
        self, secret: str | None = None, statuses: Iterator[int] | None = None, hold_first: bool = False
    ) -> None:
        self.secret = secret
        self.statuses = statuses
        self.release = threading.Event()  # with hold_first, the first request waits for this before it answers
        self.hold_first = hold_first
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = next(receiver.statuses, 200) if receiver.statuses is not None else 200
                verified, error = False, ""
                if receiver.secret is not None:
                    try:
                        Webhook(receiver.secret).verify(body, headers)
                        verified = True
                    except Exception as exc:
                        error = f"{exc.__class__.__name__}: {exc}"
                with receiver.lock:
                    receiver.received.append(Received(headers, body, verified, status, error))
                    hold = receiver.hold_first and len(receiver.received) == 1
                if hold:
                    receiver.release.wait(30)
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)
