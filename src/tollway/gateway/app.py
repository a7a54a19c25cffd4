"""The gateway's ASGI edge (pure ASGI): dispatch to an endpoint, authenticate, turn errors into responses.

Every LLM endpoint then runs the one request flow (flow.py); the endpoints are declarations
(endpoints/). Errors below this edge are domain errors; their status and body come from the one kind
table (tollway.error_shapes) in the endpoint's format.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time

from tollway.auth_failures import AuthFailures, client_address
from tollway.errors import (
    DomainError,
    InternalError,
    MethodNotAllowedError,
    NotFoundError,
    RateLimitedError,
    UnauthenticatedError,
)
from tollway.gateway.auth import key_from_query, presented_key
from tollway.gateway.call import Call
from tollway.gateway.endpoint import Endpoint, HandlerEndpoint, LlmEndpoint
from tollway.gateway.endpoints import ENDPOINTS
from tollway.gateway.errors import OPENAI, ErrorFormat, headers_of, status_of
from tollway.gateway.flow import Flow
from tollway.gateway.http import ClientGone, Receive, Scope, Send, send_bytes
from tollway.gateway.observe import CallObserver
from tollway.gateway.state import GatewayState
from tollway.identity.key_index import Identity
from tollway.scrub import PRESENTED

log = logging.getLogger("tollway.gateway")


class RequestIds:
    """Request ids without a system call each: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = "req_" + os.urandom(8).hex()
        self._next = itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._next):08x}"


class Gateway:
    """The ASGI edge over a built flow (the composition root builds it: flow.Flow)."""

    def __init__(
        self,
        flow: Flow,
        *,
        endpoints: tuple[Endpoint, ...] = ENDPOINTS,
        auth_failures: AuthFailures | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self.flow = flow
        self._auth_failures = auth_failures
        self._observer = observer  # tracing (OpenTelemetry), when on
        self._ids = RequestIds()
        self._exact = {e.path: e for e in endpoints if not (isinstance(e, HandlerEndpoint) and e.label)}
        self._prefixed = tuple(e for e in endpoints if isinstance(e, HandlerEndpoint) and e.label)
        self.paths: dict[str, LlmEndpoint] = {}  # the config file's routes (endpoints/paths.py), swapped on reload

    @property
    def state(self) -> GatewayState:
        return self.flow.state

    @state.setter
    def state(self, state: GatewayState) -> None:
        self.flow.state = state  # a reload: requests from now on see the new routes and keys

    def serves(self, path: str) -> bool:
        """Whether `path` is one of the config file's routes (the /v1 paths are the gateway's anyway)."""
        return path in self.paths

    def close(self) -> None:
        """Write out and close the access log, if there is one."""
        self.flow.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        call = Call(request_id=self._ids.new(), route=path, started=time.perf_counter())
        endpoint = self._exact.get(path) or self.paths.get(path) or self._prefixed_endpoint(path, scope["method"], call)
        errors: ErrorFormat = endpoint.errors if endpoint is not None else OPENAI
        flow = self.flow
        observer = self._observer if endpoint is not None else None
        if observer is not None:
            assert endpoint is not None
            send = observer.started(call, scope, endpoint, send)
        try:
            if endpoint is None:
                call.route = "unknown"  # keeps metric labels bounded
                raise NotFoundError(f"Unknown request URL: {scope['method']} {path}.", code="unknown_url")
            if scope["method"] != endpoint.method:
                raise MethodNotAllowedError(
                    f"Method {scope['method']} is not allowed for {path}; use {endpoint.method}.",
                    allowed=endpoint.method,
                )
            if scope.get("query_string"):  # Kong's key-auth reads ?apikey= on every route
                scope = key_from_query(scope, b"apikey", b"apikey")
            if isinstance(endpoint, HandlerEndpoint) and endpoint.key_in_query:
                scope = key_from_query(scope)
            call.consumer = self._authenticate(scope, call)
            if isinstance(endpoint, LlmEndpoint):
                await flow.run(endpoint, scope, receive, send, call)
            else:
                await endpoint.handle(flow, scope, receive, send, call)
        except DomainError as error:
            status = status_of(error)
            body = flow.scrub(errors.of_error(error), call)
            await send_bytes(send, status, body, call.id_bytes, extra=headers_of(error))
            flow.observe(call, status)
        except ClientGone:
            flow.observe(call, 499)
        except Exception:
            log.exception("unexpected error on %s (request %s)", call.route, call.request_id)
            failed = InternalError("The gateway failed on this request; see its log.")
            with contextlib.suppress(Exception):  # fails when the response had already started
                await send_bytes(send, status_of(failed), OPENAI.of_error(failed), call.id_bytes)
            flow.observe(call, status_of(failed))
        finally:
            if observer is not None:
                observer.ended(call)

    def _prefixed_endpoint(self, path: str, method: str, call: Call) -> HandlerEndpoint | None:
        """The endpoint for a path under a prefix; where several share it, the one for this method."""
        found: HandlerEndpoint | None = None
        for endpoint in self._prefixed:
            if path.startswith(endpoint.path) and (found is None or endpoint.method == method):
                found = endpoint
                if endpoint.method == method:
                    break
        if found is not None:
            assert found.label is not None
            call.route = found.label
        return found

    def _authenticate(self, scope: Scope, call: Call) -> Identity:
        failures = self._auth_failures
        address = client_address(scope.get("client")) if failures is not None else "-"
        if failures is not None and (wait := failures.retry_after(address)) is not None:
            raise RateLimitedError(
                f"Too many failed authentications from this address; try again in {wait} seconds.",
                retry_after_s=wait,
                code="too_many_auth_failures",
            )
        key = call.key = presented_key(scope["headers"])
        if key is None:
            if failures is not None:
                failures.failed(address, "gateway")
            raise UnauthenticatedError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>', 'x-api-key' or 'apikey'.",
                code="missing_api_key",
            )
        PRESENTED.set(key)  # log lines written while handling this request scrub it too
        consumer = self.flow.state.keys.authenticate(key)
        if consumer is None:
            if failures is not None:
                failures.failed(address, "gateway")
            raise UnauthenticatedError("Incorrect API key provided.", code="invalid_api_key")
        return consumer
