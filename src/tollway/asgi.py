"""The process's ASGI entry: gateway paths on the hot path, probes and metrics, then the management API."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable

import orjson

from tollway.errors import ConfigError, DomainError
from tollway.gateway.app import Gateway, RequestIds
from tollway.gateway.http import Message, Receive, Scope, Send, send_bytes
from tollway.gateway.metrics import GatewayMetrics

log = logging.getLogger("tollway")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
READY_TIMEOUT_S = 2.0


class NotReady(Exception):
    """Raised by the ready check for a reason other than the store (its message is the /readyz detail)."""


class TollwayApp:
    def __init__(
        self,
        *,
        gateway: Gateway,
        management: ASGIApp,
        metrics: GatewayMetrics,
        ready: Callable[[], Awaitable[None]],
        startup: Callable[[], Awaitable[None]],
        shutdown: Callable[[], Awaitable[None]],
        unusable_models: Callable[[], list[str]] | None = None,
        metrics_token: str | None = None,
        storage: Callable[[], Awaitable[None]] | None = None,
        after_change: Callable[[], Awaitable[None]] | None = None,
        pages: ASGIApp | None = None,
    ) -> None:
        self.gateway = gateway
        self._metrics_token = metrics_token.encode() if metrics_token else None
        self._management = management
        self._metrics = metrics
        self._ready = ready  # can this process serve (config loaded, usage journal writable)? raises if not
        self._storage = storage  # does the store answer? (/readyz?storage=1; not part of readiness)
        self._after_change = after_change  # a management write succeeded: refresh snapshots before answering
        self._unusable_models = unusable_models  # models none of whose targets can take a request now
        self._startup = startup
        self._shutdown = shutdown
        self._ids = RequestIds()
        self._pages = pages  # the dashboard (/dashboard) and the customer portal (/portal)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith(("/v1/", "/v1beta/")) or self.gateway.serves(path):  # /v1beta: Gemini format
                await self.gateway(scope, receive, send)
            elif path == "/healthz":
                await send_bytes(send, 200, b'{"status":"ok"}', self._ids.new().encode())
            elif path == "/readyz":
                await self._readyz(scope, send)
            elif path == "/metrics":
                await self._metrics_page(scope, send)
            else:
                respond = _with_request_id(send, self._ids.new().encode())
                if self._after_change is not None and _writes(scope):
                    respond = _after_success(respond, self._after_change)  # a dashboard form's change too
                if self._pages is not None and _is_page(path):
                    await self._pages(scope, receive, respond)
                else:
                    await self._management(scope, receive, respond)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            await send({"type": "websocket.close", "code": 1000})

    async def _metrics_page(self, scope: Scope, send: Send) -> None:
        """Prometheus text; with TOLLWAY_METRICS_TOKEN set, only for `Authorization: Bearer <that token>`."""
        request_id = self._ids.new().encode()
        if self._metrics_token is not None:
            authorization = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, presented = authorization.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(presented.strip(), self._metrics_token):
                body = orjson.dumps(
                    {
                        "type": "about:blank",
                        "title": "Unauthorized",
                        "status": 401,
                        "detail": "missing or invalid metrics token (Authorization: Bearer <TOLLWAY_METRICS_TOKEN>)",
                    }
                )
                realm = [(b"www-authenticate", b'Bearer realm="tollway-metrics"')]
                await send_bytes(send, 401, body, request_id, b"application/problem+json", realm)
                return
        await send_bytes(send, 200, self._metrics.exposition(), request_id, b"text/plain; version=0.0.4; charset=utf-8")

    async def _readyz(self, scope: Scope, send: Send) -> None:
        """200 while this process can take requests; the store is not asked (an outage of the database does
        not stop the gateway: usage waits in the journal), so a load balancer keeps every replica in rotation.
        `?storage=1` asks the store too: 503 while it does not answer (for a monitor, not a load balancer)."""
        request_id = self._ids.new().encode()
        try:
            await asyncio.wait_for(self._ready(), READY_TIMEOUT_S)
        except Exception as exc:
            detail = str(exc) if isinstance(exc, NotReady) else f"not ready: {exc!r}"
            await send_bytes(send, 503, orjson.dumps({"status": "unavailable", "detail": detail}), request_id)
            return
        report: dict[str, object] = {"status": "ready"}
        unusable = self._unusable_models() if self._unusable_models is not None else []
        if unusable:
            # still 200: the process serves its other models; every replica would see the same upstreams
            report = {"status": "degraded", "models_without_usable_target": unusable}
        if self._storage is not None and b"storage=1" in scope.get("query_string", b"").split(b"&"):
            try:
                await asyncio.wait_for(self._storage(), READY_TIMEOUT_S)
            except Exception as exc:
                body = {**report, "status": "storage_unavailable", "storage": f"unreachable: {exc}"}
                await send_bytes(send, 503, orjson.dumps(body), request_id)
                return
            report["storage"] = "ok"
        await send_bytes(send, 200, orjson.dumps(report), request_id)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._startup()
                except (DomainError, ConfigError) as exc:  # a known reason (e.g. the file's catalog): one line
                    log.error("startup failed: %s", _reason(exc))
                    await send({"type": "lifespan.startup.failed", "message": ""})  # said once, above
                    return
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self._shutdown()
                except Exception as exc:
                    log.exception("shutdown failed")
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


def _is_page(path: str) -> bool:
    return path in ("/dashboard", "/portal") or path.startswith(("/dashboard/", "/portal/"))


def _reason(exc: DomainError | ConfigError) -> str:
    return exc.message if isinstance(exc, DomainError) else "; ".join(exc.problems)


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NOT_CHANGES = ("/api/v1/events", "/api/v3/openmeter/events")  # usage ingestion: no snapshot depends on it


def _writes(scope: Scope) -> bool:
    return scope.get("method", "GET") not in READ_METHODS and not scope["path"].startswith(NOT_CHANGES)


def _after_success(send: Send, after_change: Callable[[], Awaitable[None]]) -> Send:
    """Run `after_change` once the write succeeded and before its answer leaves, so a client that uses what it
    just created (a key) on this process finds it."""

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start" and message.get("status", 500) < 400:
            await after_change()
        await send(message)

    return sender


def _with_request_id(send: Send, request_id: bytes) -> Send:

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
        await send(message)

    return sender
