"""The gateway's hot path (pure ASGI): dispatch, authenticate, route, call the upstream.

What happens once the upstream answered (relaying and recording usage) is in relay.py."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from tollway.clock import Clock
from tollway.gateway.access_log import AccessLog
from tollway.gateway.auth import Consumer, presented_key
from tollway.gateway.endpoints import install_endpoints
from tollway.gateway.http import (
    BodyTooLarge,
    ClientGone,
    Receive,
    RequestError,
    Scope,
    Send,
    openai_error,
    read_body,
    send_bytes,
)
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.providers.base import UpstreamError, UpstreamRequest, UpstreamResponse
from tollway.gateway.relay import Call, GatewayLimits, Relay, completion_chars, input_chars, is_event_stream
from tollway.gateway.requests import (
    parse_chat_request,
    parse_embeddings_request,
    upstream_body,
    upstream_chat_body,
)
from tollway.gateway.routing import Route, Target
from tollway.gateway.state import GatewayState
from tollway.gateway.usage import (
    estimate_prompt_tokens,
    estimate_tokens_from_text,
)
from tollway.metering.llm import TokenUsage
from tollway.metering.sink import UsageSink

log = logging.getLogger("tollway.gateway")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
CHALLENGE = [(b"www-authenticate", b'Bearer realm="tollway"')]


class RequestIds:
    """Request ids without a system call each: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = "req_" + os.urandom(8).hex()
        self._next = itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._next):08x}"


class Gateway(Relay):
    def __init__(
        self,
        state: GatewayState,
        pipeline: UsageSink,
        metrics: GatewayMetrics,
        clock: Clock,
        limits: GatewayLimits,
        access_log: AccessLog | None = None,
    ) -> None:
        self.state = state
        self._access_log = access_log
        self._pipeline = pipeline
        self._ids = RequestIds()
        self._metrics = metrics
        self._clock = clock
        self._limits = limits
        self.routes = {
            "/v1/chat/completions": ("POST", self.chat_completions),
            "/v1/embeddings": ("POST", self.embeddings),
            "/v1/models": ("GET", self.list_models),
        }
        self.error_shapes: dict[str, Callable[[RequestError], bytes]] = {}
        install_endpoints(self)  # /v1/messages and /v1/responses: gateway/endpoints/

    def close(self) -> None:
        """Write out and close the access log, if there is one."""
        if self._access_log is not None:
            self._access_log.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        call = Call(request_id=self._ids.new(), route=path, started=time.perf_counter())
        entry = self.routes.get(path)
        if entry is None and path.startswith("/v1/models/"):
            entry, call.route = ("GET", self.retrieve_model), "/v1/models/{model}"
        try:
            if entry is None:
                call.route = "unknown"  # keeps metric labels bounded
                raise RequestError(404, f"Unknown request URL: {scope['method']} {path}.", code="unknown_url")
            method, handler = entry
            if scope["method"] != method:
                raise RequestError(
                    405,
                    f"Method {scope['method']} is not allowed for {path}; use {method}.",
                    headers=[(b"allow", method.encode())],
                )
            call.consumer = self._authenticate(scope)
            await handler(scope, receive, send, call)
        except RequestError as error:
            shape = self.error_shapes.get(path)
            body = shape(error) if shape is not None else error.body()
            await send_bytes(send, error.status, body, call.id_bytes, extra=error.headers)
            self._observe(call, error.status)
        except ClientGone:
            self._observe(call, 499)
        except Exception:
            log.exception("unexpected error on %s (request %s)", call.route, call.request_id)
            body = openai_error("The gateway failed on this request; see its log.", "api_error", code="internal_error")
            with contextlib.suppress(Exception):  # fails when the response had already started
                await send_bytes(send, 500, body, call.id_bytes)
            self._observe(call, 500)

    # handlers -------------------------------------------------------------------------------------

    async def list_models(self, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
        assert call.consumer is not None
        created = int(self._clock.now().timestamp())
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": "tollway"}
            for name in self.state.router.visible_to(call.consumer)
        ]
        await send_bytes(send, 200, orjson.dumps({"object": "list", "data": data}), call.id_bytes)
        self._observe(call, 200)

    async def retrieve_model(self, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
        assert call.consumer is not None
        name = scope["path"][len("/v1/models/") :]
        if self.state.router.resolve(call.consumer, name) is None:
            raise RequestError(
                404,
                f"The model '{name}' does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        created = int(self._clock.now().timestamp())
        model = {"id": name, "object": "model", "created": created, "owned_by": "tollway"}
        await send_bytes(send, 200, orjson.dumps(model), call.id_bytes)
        self._observe(call, 200)

    async def embeddings(self, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
        body = await self._read(scope, receive)
        payload, model = parse_embeddings_request(body)
        route = self._route(call, model)
        started_at = self._clock.now()
        target, response = await self._send_upstream(
            call,
            route,
            lambda t: upstream_body(payload, model, t.model, body),
            "/embeddings",
            stream=False,
            started_at=started_at,
        )
        await self._finish_unary(
            call, route, target, response, started_at, lambda _: TokenUsage(input=input_chars(payload) // 4), send
        )

    async def chat_completions(self, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
        body = await self._read(scope, receive)
        request = parse_chat_request(body)
        route = self._route(call, request.model)
        started_at = self._clock.now()
        target, response = await self._send_upstream(
            call,
            route,
            lambda t: upstream_chat_body(request, t.model, body),
            "/chat/completions",
            stream=request.stream,
            started_at=started_at,
        )
        if request.stream and is_event_stream(response):
            await self._relay_stream(call, route, target, request, response, started_at, receive, send)
            return
        await self._finish_unary(
            call,
            route,
            target,
            response,
            started_at,
            lambda parsed: TokenUsage(
                input=estimate_prompt_tokens(request.payload),
                output=estimate_tokens_from_text(completion_chars(parsed)),
            ),
            send,
        )

    # steps ----------------------------------------------------------------------------------------

    def _authenticate(self, scope: Scope) -> Consumer:
        key = presented_key(scope["headers"])
        if key is None:
            raise RequestError(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>', 'x-api-key' or 'apikey'.",
                code="missing_api_key",
                headers=CHALLENGE,
            )
        consumer = self.state.keys.authenticate(key)
        if consumer is None:
            raise RequestError(401, "Incorrect API key provided.", code="invalid_api_key", headers=CHALLENGE)
        return consumer

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        try:
            return await read_body(scope, receive, self._limits.max_body_bytes)
        except BodyTooLarge:
            raise RequestError(
                413, f"The request body is larger than the limit of {self._limits.max_body_bytes} bytes."
            ) from None

    def _route(self, call: Call, model: str) -> Route:
        assert call.consumer is not None
        route = self.state.router.resolve(call.consumer, model)
        if route is None:
            raise RequestError(
                404,
                f"The model '{model}' does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        call.model = model
        return route

    async def _send_upstream(
        self,
        call: Call,
        route: Route,
        build: Callable[[Target], tuple[bytes, dict[str, Any]]],
        path: str,
        *,
        stream: bool,
        started_at: datetime,
    ) -> tuple[Target, UpstreamResponse]:
        """Try each target in order; fall through on connection failures and retryable statuses."""
        last_error: UpstreamError | None = None
        for index, target in enumerate(route.targets):
            body, payload = build(target)
            request = UpstreamRequest(path=path, body=body, payload=payload, stream=stream, request_id=call.request_id)
            try:
                response = await target.provider.send(request)
            except UpstreamError as error:
                last_error = error
                self._metrics.upstream_errors.inc((target.provider.name, "timeout" if error.timeout else "unreachable"))
                continue
            if response.status in RETRYABLE_STATUSES and index + 1 < len(route.targets):
                self._metrics.upstream_errors.inc((target.provider.name, str(response.status)))
                await response.read()
                continue
            return target, response
        target = route.targets[-1]
        status = 504 if last_error is not None and last_error.timeout else 502
        self._record(call, route, target, status, stream, None, started_at=started_at)
        message = f"The upstream provider could not be reached: {last_error}" if last_error else "upstream failed"
        raise RequestError(status, message, code="upstream_unavailable")
