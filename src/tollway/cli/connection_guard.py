"""Slow and oversized requests cannot hold connections: uvicorn's HTTP protocol with a header timeout, a body
idle timeout and a header size limit.

uvicorn (httptools) times out only an idle keep-alive connection between requests (`timeout_keep_alive`, from
TOLLWAY_KEEP_ALIVE_TIMEOUT_S), and only after a first response: a connection that sends nothing, or drips its
request line and headers a byte at a time, or announces a body and stops sending it, stays open for as long as
the client likes, each one holding a file descriptor (thousands of them exhaust the process's limit). This
protocol adds, per connection:

- a header deadline: from the connection's start, or from the first byte of a later request on it, the request
  line and headers must be complete within `header_timeout_s` (TOLLWAY_HEADER_TIMEOUT_S), else the connection
  is answered 408 and closed;
- a body idle timeout: while a request's body is arriving, `idle_timeout_s` (TOLLWAY_IDLE_TIMEOUT_S) without a
  byte closes the connection (the app sees the client gone); time the server itself stops reading (its buffer
  is full because the app reads slowly) does not count;
- a header size limit: a request line and headers still incomplete past `max_header_bytes`
  (TOLLWAY_MAX_HEADER_BYTES) are answered 431 and the connection closed (headers that arrive complete in one
  read, at most 256 KiB with uvloop, are not measured: the read size bounds them).

Each timer is armed, and header bytes counted, only while a request is incomplete after the bytes at hand: a
request that arrives whole in one read costs no timer (1.5-2 µs of CPU per request in all: bench/protocol.py).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Literal

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tollway.settings import Settings

Phase = Literal["idle", "headers", "body"]


class GuardedHttpProtocol(HttpToolsProtocol):
    def __init__(
        self,
        *args: Any,
        header_timeout_s: float = 10.0,
        idle_timeout_s: float = 30.0,
        max_header_bytes: int = 64 * 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._max_header_bytes = max_header_bytes
        self._phase: Phase = "idle"
        self._header_bytes = 0
        self._refused = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_data = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self._header_timeout_s, self._headers_late)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        phase = self._phase
        if phase == "idle":  # the usual case: whole requests in one read
            return
        if phase == "headers":
            # every byte of a read that ends inside the headers is counted as header (at most one read too many)
            self._header_bytes += len(data)
            if self._header_bytes > self._max_header_bytes:
                self._refuse(431, b"Request Header Fields Too Large")
            elif self._header_timer is None:
                self._header_timer = self.loop.call_later(self._header_timeout_s, self._headers_late)
            return
        self._last_data = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(self._idle_timeout_s, self._body_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    # -- httptools parser callbacks ----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._phase, self._header_bytes = "headers", 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._phase = "body"
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = "idle"
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        super().on_message_complete()

    # -- the guards --------------------------------------------------------------------------------------------

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._phase != "body" and not self.transport.is_closing():
            # a connection that never sent a request is just closed; one in the middle of its headers gets 408
            self._refuse(408, b"Request Timeout") if self._phase == "headers" else self._close()

    def _body_idle(self) -> None:
        self._idle_timer = None
        if self._phase != "body" or self.transport.is_closing():
            return
        idle = self.loop.time() - self._last_data
        if self.flow.read_paused:  # the server stopped reading (the app is slow): not the client's idling
            self._last_data = self.loop.time()
            idle = 0.0
        if idle < self._idle_timeout_s:
            self._idle_timer = self.loop.call_later(self._idle_timeout_s - idle, self._body_idle)
            return
        self._close()

    def _refuse(self, status: int, reason: bytes) -> None:
        """Answer `status` and close, unless a response is under way (then only close)."""
        self._refused = True
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (status, reason, len(reason), reason)
            )
        self._close()

    def _close(self) -> None:
        self._cancel_timers()
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._idle_timer = None


def guarded_protocol(settings: Settings) -> Any:
    """The protocol factory uvicorn's `http` option takes (a partial: it pickles for worker processes)."""
    return functools.partial(
        GuardedHttpProtocol,
        header_timeout_s=settings.header_timeout_s,
        idle_timeout_s=settings.idle_timeout_s,
        max_header_bytes=settings.max_header_bytes,
    )
