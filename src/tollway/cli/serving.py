"""How `tollway serve` starts and stops: the warnings it prints first, and a clean exit (the port is bound by
tollway.listening before anything is announced)."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Generator

import uvicorn

from tollway.config.schema import TollwayConfig
from tollway.runtime.heap import settle_heap
from tollway.settings import Settings

LOOPBACK = ("127.0.0.1", "::1", "localhost")


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
