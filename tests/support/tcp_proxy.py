"""A TCP proxy on loopback that a test can take down and bring back, to simulate a database outage.

While down, new connections are refused and open ones are reset, as when the database host goes
away; when back up, connections are forwarded to the target again on the same port. While stalled,
connections are accepted and bytes are read but nothing is forwarded, as on a hung network path. While muted,
requests are forwarded but the answers are dropped (a server that did the work, a reply lost on the way).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.support.net import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.bytes_seen = 0  # from clients, forwarded or not
        self.muted = False  # answers dropped

    def up(self) -> TcpProxy:
        asyncio.run_coroutine_threadsafe(self._up(), self._loop).result(10)
        return self

    def down(self) -> None:
        asyncio.run_coroutine_threadsafe(self._down(), self._loop).result(10)

    def stall(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def mute(self, muted: bool = True) -> None:
        self.muted = muted

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def close(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _up(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(self._pipe(reader, upstream_writer, count=True), self._pipe(upstream_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(upstream_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, count: bool = False) -> None:
        try:
            while data := await reader.read(65536):
                if count:
                    self.bytes_seen += len(data)
                await self._flowing.wait()
                if self.muted and not count:
                    continue
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
