"""The one request flow every LLM endpoint goes through.

    read body -> parse -> resolve route -> admit -> send (target policy) -> relay -> record + settle
                                              \\____________ release (finally) ___________________/

Endpoints are declarations (endpoint.py); the flow knows no endpoint by name. Admission and the
target policy are hooks (hooks.py): spend control adds its check in `Admission.admit` and its
accounting in `Reservation.settle`; routing orders or filters targets in `TargetPolicy.targets`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from random import Random
from typing import cast

import orjson

from tollway.clock import Clock
from tollway.errors import NotFoundError, TooLargeError
from tollway.gateway.access_log import AccessLog
from tollway.gateway.adapt import AdaptedRoutes
from tollway.gateway.endpoint import LlmEndpoint, passed_on
from tollway.gateway.failover import Answer, Failover, Sleep
from tollway.gateway.hooks import (
    Admission,
    Admit,
    Attempt,
    Charged,
    Estimates,
    Reservation,
    TargetPolicy,
    with_spend_headers,
)
from tollway.gateway.http import BodyTooLarge, Message, Receive, Scope, Send, read_body, send_bytes
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.relay import Call, GatewayLimits, is_event_stream
from tollway.gateway.routing import Route, Target
from tollway.gateway.state import GatewayState
from tollway.metering.sink import UsageSink
from tollway.scrub import Scrubber
from tollway.spend.admission import Estimate

DROPPED_HEADER = b"x-tollway-dropped"  # request fields a translation dropped for the target
FAILED = 500  # the status recorded for a call whose answer the gateway failed to relay


class Flow(Failover):
    def __init__(
        self,
        state: GatewayState,
        pipeline: UsageSink,
        metrics: GatewayMetrics,
        clock: Clock,
        limits: GatewayLimits,
        access_log: AccessLog | None = None,
        *,
        admission: Admission | None = None,
        policy: TargetPolicy | None = None,
        scrubber: Scrubber | None = None,
        rng: Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.state = state
        self._scrubber = scrubber or Scrubber()
        self._pipeline = pipeline
        self._metrics = metrics
        self._clock = clock
        self._limits = limits
        self._access_log = access_log
        # None: the defaults (admit all, targets in order), skipped on the hot path rather than called
        self._admission = admission
        self._policy = policy
        self._rng = rng or Random()  # jitter of the backoff between tries of one target
        self._sleep = sleep
        self._adapted: dict[str, AdaptedRoutes] = {}

    # steps, public for endpoint handlers -----------------------------------------------------------

    def now(self) -> datetime:
        return self._clock.now()

    async def read(self, scope: Scope, receive: Receive) -> bytes:
        try:
            return await read_body(scope, receive, self._limits.max_body_bytes)
        except BodyTooLarge:
            raise TooLargeError(
                f"The request body is larger than the limit of {self._limits.max_body_bytes} bytes."
            ) from None

    def resolve(self, call: Call, model: str) -> Route:
        assert call.consumer is not None
        route = self.state.router.resolve(call.consumer, model)
        if route is None:
            raise NotFoundError(
                f"The model '{model}' does not exist or you do not have access to it.",
                field="model",
                code="model_not_found",
            )
        call.model, call.requested_model = route.model, model
        return route

    async def estimate(self, call: Admit) -> Estimate | None:
        """The spend admission's cost estimate for a call (None where no admission estimates)."""
        if isinstance(self._admission, Estimates):
            return await self._admission.estimate(call)
        return None

    async def respond(self, send: Send, call: Call, status: int, body: bytes) -> None:
        await send_bytes(send, status, self.scrub(body, call), call.id_bytes)
        self.observe(call, status)

    # the flow --------------------------------------------------------------------------------------

    async def run(self, endpoint: LlmEndpoint, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
        body = await self.read(scope, receive)
        if endpoint.prepare is not None:
            body = endpoint.prepare(body)
        parsed = endpoint.parse(body)
        route = resolved = self.resolve(call, parsed.model)
        parsed.strict = route.strict
        if endpoint.adapter is not None:
            route = self._adapter(endpoint).adapt(route, passed_on(scope, endpoint.passed_on))
        assert call.consumer is not None
        targets: Sequence[Target] = route.targets
        reservation: Reservation | None = None
        if self._admission is not None or self._policy is not None:
            admit = Admit(
                call.request_id,
                call.consumer,
                parsed.model,
                endpoint.path,
                parsed.stream,
                parsed.prompt,
                resolved,  # the configured targets (an endpoint's adapters wrap their providers)
                parsed.payload,
                scope["headers"],
            )
            if self._admission is not None:
                reservation = call.reservation = await self._admission.admit(admit)
                rewrite = getattr(reservation, "rewrite", None)
                if rewrite:  # degraded by a budget (hooks.Degraded): the request as changed, parsed and routed again
                    body = orjson.dumps({**parsed.payload, **rewrite})
                    parsed = endpoint.parse(body)
                    requested = call.requested_model
                    route = resolved = self.resolve(call, parsed.model)
                    call.requested_model = requested  # the usage record keeps what the client asked for
                    parsed.strict = route.strict
                    if endpoint.adapter is not None:
                        route = self._adapter(endpoint).adapt(route, passed_on(scope, endpoint.passed_on))
                    targets = route.targets
                    admit = replace(admit, model=parsed.model, route=resolved, payload=parsed.payload)
                if getattr(reservation, "currency", None) is not None:  # it prices its call (hooks.Charged)
                    send = with_spend_headers(send, cast(Charged, reservation), comment=endpoint.cost_comment)
            if self._policy is not None:
                try:
                    targets = self._policy.targets(route, admit)
                except BaseException:  # e.g. no usable target (503): nothing was called, the hold is undone
                    if reservation is not None:
                        reservation.release()
                    raise
        target: Target | None = None
        answer: Answer | None = None
        started_at = self._clock.now()
        try:
            self.begin(call, route, targets, parsed.prompt, parsed.stream, started_at)  # write-ahead intent
            answer = await self.send_upstream(
                call,
                route,
                targets,
                lambda t: endpoint.build(parsed, t, body),
                endpoint.upstream_path,
                stream=parsed.stream,
                started_at=started_at,
                prompt=parsed.prompt,
            )
            target, response = answer.target, answer.response
            if parsed.dropped:
                send = _with_header(send, DROPPED_HEADER, ", ".join(parsed.dropped).encode())
            if parsed.stream and endpoint.tracker is not None and is_event_stream(response):
                await self.relay_stream(
                    call,
                    route,
                    target,
                    parsed.prompt,
                    response,
                    started_at,
                    receive,
                    send,
                    tracker=endpoint.tracker(parsed),
                    cut_tail=endpoint.errors.stream_cut,
                    head=(answer.head, answer.rest),
                )
                return
            await self.finish_unary(
                call,
                route,
                target,
                response,
                started_at,
                lambda answer: endpoint.estimate(parsed, answer),
                send,
                usage_of=endpoint.usage_of,
                error_shape=endpoint.errors.of_upstream,
                read=(answer.head, answer.rest),
            )
        except BaseException as error:
            if target is not None and not call.recorded:
                # The upstream answered but relaying it failed (e.g. a translator): the call happened.
                self.record(call, route, target, FAILED, parsed.stream, None, started_at=started_at)
            elif isinstance(error, asyncio.CancelledError) and call.intent is not None and not call.recorded:
                # The server stopped while the upstream was being asked: metered as a kill would leave it.
                self.record_interrupted(call)
            raise
        finally:
            if call.intent is not None and not call.recorded:
                # no usage record: no try got an answer; nothing metered
                self._pipeline.end(call.request_id)
            if self._policy is not None and answer is not None and not answer.reported:
                self._report(self._policy, answer, call)
            if reservation is not None:
                reservation.release()

    @staticmethod
    def _report(policy: TargetPolicy, answer: Answer, call: Call) -> None:
        """How the try that served the call went, once it was relayed (or broke off)."""
        total_s = asyncio.get_running_loop().time() - answer.began
        cause = call.failure or answer.cause
        policy.finished(Attempt(answer.target, cause, answer.response.status, answer.ttfb_s, total_s))

    def _adapter(self, endpoint: LlmEndpoint) -> AdaptedRoutes:
        adapted = self._adapted.get(endpoint.path)
        if adapted is None:
            assert endpoint.adapter is not None
            adapted = self._adapted[endpoint.path] = AdaptedRoutes(endpoint.adapter(self._clock))
        return adapted


def _with_header(send: Send, name: bytes, value: bytes) -> Send:
    """`send` adding one header to the response's start."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), (name, value)]}
        await send(message)

    return sending
