"""How `tollway serve` listens and stops: the port bound before anything is announced, and a clean exit."""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import threading
from collections.abc import Generator

import uvicorn

from tollway.config.schema import TollwayConfig
from tollway.settings import Settings

LISTEN_BACKLOG = 2048
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class PortInUse(Exception):
    pass


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port. PortInUse when another process holds it; OSError for other failures."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} is in use; choose another with --port or TOLLWAY_PORT") from None
        raise
    sock.set_inheritable(True)
    return sock


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
    """uvicorn's server, except that a graceful stop on SIGTERM or SIGINT exits normally (status 0).

    uvicorn re-raises the signal it handled once shutdown is complete, so the process looks killed
    (status -15, 143 in a shell) to systemd and Kubernetes even after a clean stop."""

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
