"""A real aiohttp server on loopback, run on its own event loop in a thread (for fake providers)."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from aiohttp import web

from tests.support.net import bound_socket

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
R = TypeVar("R")


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


class LoopbackServer(Generic[R]):
    """Scripted replies of type R; records what it received."""

    def __init__(self, default: R) -> None:
        self._socket = bound_socket()  # held from now on: the port is ours before the server starts
        self.port = int(self._socket.getsockname()[1])
        self.origin = f"http://127.0.0.1:{self.port}"
        self.received: list[Received] = []
        self.default = default
        self._first_default = default
        self._script: deque[R] = deque()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> LoopbackServer[R]:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._socket.close()

    def reset(self) -> None:
        """Back to as started (nothing received, nothing scripted, the first default reply), for the next test when
        one server is shared by a module's tests."""
        self.received.clear()
        self._script.clear()
        self.default = self._first_default

    def enqueue(self, *replies: R) -> None:
        self._script.extend(replies)

    def drop_script(self) -> int:
        """Forget the replies still scripted; how many there were (a test that left some did not use them)."""
        left = len(self._script)
        self._script.clear()
        return left

    def next_reply(self) -> R:
        return self._script.popleft() if self._script else self.default

    async def record(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        body = orjson.loads(raw) if raw else {}
        self.received.append(Received(request.path, dict(request.query), dict(request.headers), body))
        return body


async def write_events(
    request: web.Request, events: list[bytes], *, cut_after: int | None, chunk_delay_s: float = 0.0
) -> web.StreamResponse:
    """Send SSE events; with `cut_after`, abort the connection after that many events."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for index, event in enumerate(events):
        if cut_after is not None and index >= cut_after:
            assert request.transport is not None
            request.transport.abort()
            return response
        await response.write(event)
        if chunk_delay_s:
            await asyncio.sleep(chunk_delay_s)
    await response.write_eof()
    return response


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"
