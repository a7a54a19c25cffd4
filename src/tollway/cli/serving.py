"""How `tollway serve` starts and stops: the warnings it prints first, and a clean exit (the port is bound by
tollway.listening before anything is announced)."""

from __future__ import annotations

import contextlib
import gc
import signal
import socket
import threading
from collections.abc import Generator

import uvicorn

from tollway.config.schema import TollwayConfig
from tollway.settings import Settings

LOOPBACK = ("127.0.0.1", "::1", "localhost")
YOUNG_COLLECTION_AFTER = 10_000  # net allocations of tracked objects between collections of the youngest generation


def start_warnings(settings: Settings, config: TollwayConfig) -> list[str]:
    """One line for each setting that leaves a part of Tollway unusable."""
    lines = []
    if not config.models:
        lines.append("no models in the config: every gateway request will be refused (add a `models:` section)")
    if not config.consumers:
        lines.append("no consumers in the config: only keys created with `tollway keys create` or the API are accepted")
    if not settings.admin_token:
        lines.append("TOLLWAY_ADMIN_TOKEN is not set: the management API (/api/v1) is off")
    if settings.host not in LOOPBACK and not settings.metrics_token:
        lines.append(
            f"TOLLWAY_METRICS_TOKEN is not set: /metrics (models, token counts) answers anyone who reaches "
            f"{settings.host}:{settings.port}"
        )
    return lines


def settle_heap() -> None:
    """Move everything alive now (modules, the config, the built app: ~225k objects) out of the cyclic
    garbage collector's reach: with it in the oldest generation, every full collection walked it all
    again (tens of ms each on the request thread, a request's p99 at c=1) and full collections kept
    coming as requests' survivors piled up. Reference counting still frees what of it becomes garbage;
    only cycles among these startup objects would stay (once: e.g. the first config's, after a reload).
    Then the youngest generation is collected every `YOUNG_COLLECTION_AFTER` net allocations instead of
    700: each collection walks the objects of the requests in flight, whatever the threshold, so fewer of
    them cost less (~6 µs per request at c=64), for at most that many objects of cyclic garbage waiting.
    Figures: docs/benchmarks.md."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, middle, oldest)


class Server(uvicorn.Server):
    """uvicorn's server, except that a graceful stop on SIGTERM or SIGINT exits normally (status 0), and
    that the heap built at startup is kept out of the garbage collector's walks (`settle_heap`).

    uvicorn re-raises the signal it handled once shutdown is complete, so the process looks killed
    (status -15, 143 in a shell) to systemd and Kubernetes even after a clean stop."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            settle_heap()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
