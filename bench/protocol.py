#!/usr/bin/env python3
"""What `tollway serve`'s HTTP protocol (src/tollway/cli/connection_guard.py: header deadline, body idle
timeout, header size limit) costs per request, against uvicorn's plain httptools protocol.

No sockets: each protocol is fed the same keep-alive POST (the bench's chat completion request, headers and
body in one read) through a fake transport, and a trivial ASGI app answers it; the two alternate in many
small batches, each measured as CPU time per request; medians and best batches.

    .venv/bin/python bench/protocol.py
    .venv/bin/python bench/protocol.py --rounds 50 --requests 4000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import MutableMapping
from typing import Any

import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from tollway.cli.connection_guard import GuardedHttpProtocol

BODY = b'{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer bench-key-0123\r\n"
    b"Content-Type: application/json\r\nUser-Agent: wrk\r\nAccept: */*\r\nContent-Length: %d\r\n\r\n" % len(BODY)
) + BODY


async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


class Transport:
    """What the protocol asks of a transport; writes go nowhere."""

    def __init__(self) -> None:
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        return None

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


async def drive(protocol: type[HttpToolsProtocol], requests: int) -> float:
    """CPU seconds per request over `requests` keep-alive requests on one connection."""
    config = Config(app, lifespan="off", log_level="critical", access_log=False)
    config.load()
    connection = protocol(config=config, server_state=ServerState(), app_state={})
    connection.connection_made(Transport())  # type: ignore[arg-type]
    began = time.process_time()
    for _ in range(requests):
        connection.data_received(REQUEST)
        await asyncio.sleep(0)  # the ASGI task reads the body
        await asyncio.sleep(0)  # ... and answers
    spent = time.process_time() - began
    connection.connection_lost(None)
    return spent / requests


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    protocols: dict[str, type[HttpToolsProtocol]] = {"httptools": HttpToolsProtocol, "guarded": GuardedHttpProtocol}
    for protocol in protocols.values():
        await drive(protocol, 4000)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in protocols}
    for _ in range(args.rounds):
        for name, protocol in protocols.items():
            gc.collect()
            samples[name].append(await drive(protocol, args.requests))
    for name, values in samples.items():
        print(f"{name:10s} median {statistics.median(values) * 1e6:6.2f} µs, best {min(values) * 1e6:6.2f} µs")
    plain, guarded = (statistics.median(values) for values in samples.values())
    print(f"guarded - httptools (medians): {(guarded - plain) * 1e6:+.2f} µs per request")


if __name__ == "__main__":
    uvloop.run(main())
