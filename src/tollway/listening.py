"""The listening socket a server takes before it announces anything (`tollway serve`, `tollway demo`): bound
first, so that a port in use is one clear line, not a traceback after the banner."""

from __future__ import annotations

import errno
import socket

LISTEN_BACKLOG = 2048


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
