"""Failed authentication, counted per client address: a metric, a rate-limited log line, and a block.

The gateway (consumer keys) and the management API (the admin token) report each refused credential
here. Each failure counts in `tollway_auth_failures_total{surface}`. The first failure from an address
in each window is logged (one line per address per window, with the previous window's count), so a
guessing client cannot flood the log. An address with `limit` failures in the current window is
answered 429 with Retry-After until the window ends, before its credential is even looked at: a
correct guess from that address is refused as well, so the answer tells a guesser nothing. Other
addresses (and their valid keys) are not slowed: a lookup in a dict is all a request pays.

Memory is bounded: at most `max_addresses` addresses are tracked, the least recently seen dropped first.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from tollway.metrics import Counter

log = logging.getLogger("tollway.auth")

WINDOW_S = 60.0
MAX_ADDRESSES = 10_000


@dataclass(slots=True)
class _Window:
    started: float
    failures: int = 0
    previous: int = 0  # failures in the window before, reported in the next log line


class AuthFailures:
    def __init__(
        self,
        counter: Counter,
        *,
        limit: int,
        window_s: float = WINDOW_S,
        max_addresses: int = MAX_ADDRESSES,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        """`limit`: failures per address per window before it is answered 429 (0: never blocked)."""
        self._counter = counter
        self.limit = limit
        self.window_s = window_s
        self._max = max_addresses
        self._now = now
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._lock = threading.Lock()  # the management API checks tokens in worker threads
        # shared through Redis (adapters/redis/routing.py): told of each failure, never waiting
        self.share: Callable[[str], None] | None = None

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again when it is blocked; None when it is not."""
        if self.limit <= 0:
            return None
        with self._lock:
            window = self._windows.get(address)
            if window is None:
                return None
            now = self._now()
            if now - window.started >= self.window_s or window.failures < self.limit:
                return None
            return max(1, math.ceil(window.started + self.window_s - now))

    def block(self, address: str, for_s: float) -> None:
        """Another gateway counted `limit` failures from `address` across the fleet: blocked here too."""
        if self.limit <= 0 or for_s <= 0:
            return
        with self._lock:
            started = self._now() - max(0.0, self.window_s - for_s)
            window = self._windows.get(address)
            if window is not None and window.failures >= self.limit and window.started >= started:
                return
            self._windows[address] = _Window(started=started, failures=self.limit)
            self._windows.move_to_end(address)
            while len(self._windows) > self._max:
                self._windows.popitem(last=False)

    def failed(self, address: str, surface: str) -> None:
        """Count one refused credential from `address` on `surface` ("gateway" or "admin")."""
        self._counter.inc((surface,))
        if self.share is not None:
            self.share(address)
        with self._lock:
            now = self._now()
            window = self._windows.get(address)
            if window is not None and now - window.started < self.window_s:
                window.failures += 1
                self._windows.move_to_end(address)
                return
            previous = window.failures if window is not None else 0
            self._windows[address] = _Window(started=now, failures=1, previous=previous)
            self._windows.move_to_end(address)
            while len(self._windows) > self._max:
                self._windows.popitem(last=False)
        if previous:
            log.warning(
                "authentication failed from %s on the %s surface (%d failures from it in the window before)",
                address,
                surface,
                previous,
            )
        else:
            log.warning("authentication failed from %s on the %s surface", address, surface)

    def __len__(self) -> int:
        return len(self._windows)


def client_address(client: tuple[str, int] | list[object] | None) -> str:
    """The address part of an ASGI scope's `client` ("-" when the server gives none)."""
    if not client:
        return "-"
    return str(client[0])
