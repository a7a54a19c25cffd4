"""The one request flow every LLM endpoint goes through, composed of its steps.

    read body -> parse -> resolve route -> admit -> intent -> send (failover.py) -> relay (relay.py)
      -> record (here, once) + settle -> the answer's end;  finally: release (once per admitted call)

Sending returns an answer or what every try failed with; relaying returns the call's outcome. The flow
writes the call's one usage record in one place (`_record`): from an outcome, from the try that stands
for a failed call, or from the intent of a call the server stopped. Endpoints are declarations
(endpoint.py); the flow knows no endpoint by name. Admission and the target policy are hooks (hooks.py):
spend control adds its check in `Admission.admit` and its accounting in `Reservation.settle`; routing
orders or filters targets in `TargetPolicy.targets`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from random import Random
from typing import cast

import orjson

from tollway.clock import Clock
from tollway.errors import NotFoundError, TooLargeError, UnavailableError, UpstreamFailedError
from tollway.gateway.access_log import AccessLog
from tollway.gateway.adapt import AdaptedRoutes
from tollway.gateway.call import Call
from tollway.gateway.endpoint import LlmEndpoint, Parsed, passed_on
from tollway.gateway.failover import Answer, Failover, Sleep, Tries
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
from tollway.gateway.providers.base import is_event_stream
from tollway.gateway.relay import (
    FAILED,
    GatewayLimits,
    LargeAnswer,
    Outcome,
    Relay,
    Relaying,
    StreamAnswer,
    WholeAnswer,
)
from tollway.gateway.routing import Route, Target
from tollway.gateway.state import GatewayState
from tollway.gateway.usage import estimate_prompt_tokens
from tollway.metering.intents import CallIntent, interrupted_call
from tollway.metering.llm import AttemptRecord, LlmCall
from tollway.metering.sink import UsageSink
from tollway.scrub import Scrubber
from tollway.spend.admission import Estimate

DROPPED_HEADER = b"x-tollway-dropped"  # request fields a translation dropped for the target


class Flow:
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
        self._scrubber = scrubber = scrubber or Scrubber()
        self._pipeline = pipeline
        self._metrics = metrics
        self._clock = clock
        self._limits = limits
        self._access_log = access_log
        # None: the defaults (admit all, targets in order), skipped on the hot path rather than called
        self._admission = admission
        self._policy = policy
        self._failover = Failover(metrics, clock, limits.max_buffered_response_bytes, policy, rng or Random(), sleep)
        self._relay = Relay(metrics, limits, scrubber)
        self._adapted: dict[str, AdaptedRoutes] = {}

    def close(self) -> None:
        """Write out and close the access log, if there is one."""
        if self._access_log is not None:
            self._access_log.close()

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
        charged: Charged | None = None  # a reservation that prices its call: its spend headers go on the response
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
                reservation = await self._admission.admit(admit)
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
                    charged = cast(Charged, reservation)
            if self._policy is not None:
                try:
                    targets = self._policy.targets(route, admit)
                except BaseException:  # e.g. no usable target (503): nothing was called, the hold is undone
                    if reservation is not None:
                        reservation.release()
                    raise
        started_at = self._clock.now()
        answer: Answer | None = None
        relaying: Relaying | None = None
        try:
            intent = self._begin(call, route, targets, parsed, started_at)  # a full journal disk: 503
            answer = await self._send(endpoint, parsed, body, call, route, targets, intent, started_at, reservation)
            if parsed.dropped:
                send = _with_header(send, DROPPED_HEADER, ", ".join(parsed.dropped).encode())
            try:
                relaying = self._relaying(endpoint, parsed, call, answer, intent, receive, send, charged)
                outcome = await relaying.relay()
            except BaseException:
                # The upstream answered but relaying broke off (a translator failed, the server stopped):
                # the call happened, and what a stream had sent was spent.
                outcome = relaying.broken(parsed.stream) if relaying else Outcome(FAILED, streamed=parsed.stream)
                raise
            finally:  # the answered call's record, before the client can see its end
                record = self._usage(call, route, answer.target, outcome, answer.attempts, started_at)
                self._record(call, record, reservation)
            self.observe(call, await relaying.end())
        finally:
            if self._policy is not None and answer is not None and not answer.reported:
                self._report(self._policy, answer, relaying)
            if reservation is not None:
                reservation.release()

    # its steps -------------------------------------------------------------------------------------

    def _begin(
        self, call: Call, route: Route, targets: Sequence[Target], parsed: Parsed, started_at: datetime
    ) -> CallIntent:
        """Journal the call's write-ahead intent before any upstream is called (the target first in line
        stands for the one that will serve it). Raises UnavailableError, refusing the call, when the
        journal cannot take it: what cannot be recorded is never spent."""
        assert call.consumer is not None
        first = targets[0] if targets else None
        provider = first.provider.name if first is not None else "-"
        upstream_model = first.model if first is not None else "-"
        intent = CallIntent(
            request_id=call.request_id,
            subject=call.consumer.username,
            time=started_at,
            model=route.model,
            upstream_model=upstream_model,
            provider=provider,
            route=call.route,
            streamed=parsed.stream,
            input_tokens=estimate_prompt_tokens(parsed.prompt),
            price=self.state.prices.get((provider, upstream_model)),
            requested_model=None if call.requested_model in (route.model, "-") else call.requested_model,
        )
        self._pipeline.begin(intent)
        return intent

    async def _send(
        self,
        endpoint: LlmEndpoint,
        parsed: Parsed,
        body: bytes,
        call: Call,
        route: Route,
        targets: Sequence[Target],
        intent: CallIntent,
        started_at: datetime,
        reservation: Reservation | None,
    ) -> Answer:
        """The call's answer from its targets. A call that gets none is recorded against the try that stands
        for it (or, stopped while waiting, from its intent; or not at all where nothing answered), and the
        error raised."""
        record: LlmCall | None = None
        error: BaseException
        if not targets:
            error = UnavailableError(f"The model '{route.model}' has no target to send the request to.")
        else:
            tries = Tries(targets)
            try:
                sent = await self._failover.send(tries, call.request_id, endpoint, parsed, body)
            except BaseException as broke:
                error = broke
                if tries.answered is not None:  # the upstream answered, then the try broke off: the call happened
                    outcome = Outcome(FAILED, streamed=parsed.stream)
                    record = self._usage(call, route, tries.answered, outcome, tries.failed, started_at)
                elif isinstance(broke, asyncio.CancelledError):
                    # The server stopped while the upstream was being asked: metered as a kill would leave it.
                    record = interrupted_call(intent)
            else:
                if isinstance(sent, Answer):
                    return sent
                error = sent.error
                if sent.target is not None:  # else no target could take the request: nothing was called
                    outcome = Outcome(sent.status, streamed=parsed.stream)
                    record = self._usage(call, route, sent.target, outcome, sent.attempts, started_at)
        if record is None:
            self._pipeline.end(call.request_id)  # no upstream answered: nothing metered
        else:
            self._record(call, record, reservation)
        raise error

    def _relaying(
        self,
        endpoint: LlmEndpoint,
        parsed: Parsed,
        call: Call,
        answer: Answer,
        intent: CallIntent,
        receive: Receive,
        send: Send,
        charged: Charged | None = None,
    ) -> Relaying:
        """How the answer is relayed; `charged`: the call's spend headers go on its response (a whole answer adds
        them to its own; the others send through `with_spend_headers`, which also ends a stream with the cost)."""
        relay = self._relay
        if parsed.stream and endpoint.tracker is not None and is_event_stream(answer.response):
            if charged is not None:
                send = with_spend_headers(send, charged, comment=endpoint.cost_comment)
            tracker = endpoint.tracker(parsed)
            intent.progress = lambda: tracker.content_chunks  # read only when the intent is carried
            cut = endpoint.errors.stream_cut
            return StreamAnswer(relay, call, answer, receive, send, tracker, parsed.prompt, cut)
        if answer.rest is not None and answer.response.status < 400:  # too large to buffer: relayed as it arrives
            if charged is not None:
                send = with_spend_headers(send, charged, comment=endpoint.cost_comment)
            return LargeAnswer(relay, call, answer, answer.rest, send, endpoint.usage_of)
        return WholeAnswer(relay, call, answer, send, endpoint, parsed, charged)

    def _usage(
        self,
        call: Call,
        route: Route,
        target: Target,
        outcome: Outcome,
        attempts: tuple[AttemptRecord, ...],
        started_at: datetime,
    ) -> LlmCall:
        """The usage record of a call `target` served (or stands for), as `outcome` says it went."""
        assert call.consumer is not None
        provider = target.provider.name
        return LlmCall(
            request_id=call.request_id,
            subject=call.consumer.username,
            time=started_at,
            model=route.model,
            upstream_model=target.model,
            provider=provider,
            route=call.route,
            status_code=outcome.status,
            streamed=outcome.streamed,
            usage=outcome.usage,
            partial=outcome.partial,
            estimated=outcome.estimated,
            price=self.state.prices.get((provider, target.model)),
            attempts=attempts,
            requested_model=None if call.requested_model in (route.model, "-") else call.requested_model,
            duration_ms=int((time.perf_counter() - call.started) * 1000),
        )

    def _record(self, call: Call, record: LlmCall, reservation: Reservation | None) -> None:
        """The one place a usage record is written, once per call that reached an upstream: journaled
        (closing the call's intent), settled with its reservation, its tokens counted."""
        self._pipeline.record_call(record)
        if reservation is not None:
            reservation.settle(record)
        if record.interrupted:
            return  # the server is stopping: nothing more of this call is relayed or logged
        call.provider, call.usage, call.attempts = record.provider, record.usage, record.attempts
        if record.usage is not None:
            for token_type, tokens in record.usage.by_type().items():
                if tokens:
                    self._metrics.tokens.inc((record.model, record.provider, token_type), tokens)

    @staticmethod
    def _report(policy: TargetPolicy, answer: Answer, relaying: Relaying | None) -> None:
        """How the try that served the call went, once it was relayed (or broke off)."""
        total_s = asyncio.get_running_loop().time() - answer.began
        cause = (relaying.failure if relaying is not None else None) or answer.cause
        policy.finished(Attempt(answer.target, cause, answer.response.status, answer.ttfb_s, total_s))

    # the edge's view: scrubbing and counting ------------------------------------------------------

    def scrub(self, body: bytes, call: Call) -> bytes:
        """`body` without any credential Tollway holds nor the key this call presented."""
        return self._scrubber.bytes(body, call.key)

    def credentials_refused(self, provider: str) -> UpstreamFailedError:
        """Count an upstream's 401/403 to Tollway's credentials and make the gateway's 502 for it."""
        return self._relay.credentials_refused(provider)

    def observe(self, call: Call, status: int) -> None:
        """The call is over (answered, refused or failed): counted, timed and logged, once."""
        call.status = status
        elapsed = time.perf_counter() - call.started
        self._metrics.requests.inc((call.route, call.model, str(status)))
        self._metrics.latency.observe(elapsed, (call.route, call.model))
        if self._access_log is not None:
            self._access_log.write(
                request_id=call.request_id,
                route=call.route,
                consumer=call.consumer.username if call.consumer is not None else "-",
                model=call.model,
                provider=call.provider,
                status=status,
                usage=call.usage,
                latency_s=elapsed,
            )

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
