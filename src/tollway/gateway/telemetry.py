"""OpenTelemetry for the gateway: a span per call and per upstream try, and the GenAI client metrics, following
OpenTelemetry's GenAI semantic conventions (docs/observability.md).

Imported only when tracing is on (TOLLWAY_OTEL; wiring/telemetry.py builds it): with it off, nothing of
OpenTelemetry is loaded and the gateway's observer is None.

- The call's span (kind SERVER, named `{gen_ai.operation.name} {gen_ai.request.model}`) is a child of the
  client's `traceparent` when it sent one. It carries the operation, the provider, the requested and the
  answering model, the token usage, the finish reasons, the response id, the consumer (`tollway.consumer`),
  the HTTP status and `error.type`. Never a prompt, a completion or a key.
- Each try of an upstream target is a child span (kind CLIENT): `server.address`, `server.port`,
  `http.response.status_code`, `error.type` (a failing status, `timeout`, `unreachable`, `skipped`); its
  trace context goes upstream as `traceparent` (providers.base.TRACE_HEADERS, added by the HTTP client).
- `gen_ai.client.token.usage` (per `gen_ai.token.type`: input, output) and `gen_ai.client.operation.duration`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tollway import __version__
from tollway.gateway.call import Call
from tollway.gateway.endpoint import Endpoint, LlmEndpoint
from tollway.gateway.hooks import Admit, Attempt, TargetPolicy
from tollway.gateway.http import Message, Scope, Send
from tollway.gateway.providers.base import TRACE_HEADERS
from tollway.gateway.routing import Route, Target

# the semantic conventions' bucket boundaries for the two GenAI client histograms
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
OPERATIONS = {  # the upstream path an endpoint speaks -> gen_ai.operation.name
    "/chat/completions": "chat",
    "/messages": "chat",
    "/responses": "chat",
    "/completions": "text_completion",
    "/embeddings": "embeddings",
}
MAX_WATCHED_BODY = 1024 * 1024  # a larger unary answer is not parsed for its model and finish reasons
_PROPAGATED = (b"traceparent", b"tracestate")


@dataclass(frozen=True, slots=True)
class ProviderFacts:
    """What the conventions say about a configured provider: `gen_ai.provider.name` and its server."""

    system: str
    address: str | None = None
    port: int | None = None


@dataclass(slots=True)
class _Traced:
    """One traced call in flight (held in a context variable of the request's task)."""

    span: Span
    operation: str
    reset: Token[_Traced | None] | None = None
    status: int | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    body: bytearray | None = None  # a unary answer, while it arrives
    streamed: bool = False
    try_span: Span | None = None
    try_reset: Token[tuple[tuple[str, str], ...]] | None = None


def operation_of(endpoint: Endpoint) -> str | None:
    """gen_ai.operation.name of an endpoint's calls; None: not a model call (model lists, token counts)."""
    if isinstance(endpoint, LlmEndpoint):
        return OPERATIONS.get(endpoint.upstream_path, "chat")
    if endpoint.label is not None and "generateContent" in endpoint.label:
        return "generate_content"  # the Gemini format; its embedContent routes are told apart at the end
    return None


class GenAiTelemetry:
    """The gateway's CallObserver when tracing is on; `policy` wraps the target policy to see each try."""

    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        providers: Callable[[str], ProviderFacts | None],
    ) -> None:
        self._tracer = tracer_provider.get_tracer("tollway", __version__)
        meter = meter_provider.get_meter("tollway", __version__)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._providers = providers
        self._propagator = TraceContextTextMapPropagator()
        self._current: ContextVar[_Traced | None] = ContextVar("tollway_traced_call", default=None)

    # the call --------------------------------------------------------------------------------------

    def started(self, call: Call, scope: Scope, endpoint: Endpoint, send: Send) -> Send:
        operation = operation_of(endpoint)
        if operation is None:
            return send
        carrier = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"] if name in _PROPAGATED
        }
        parent = self._propagator.extract(carrier) if carrier else None
        span = self._tracer.start_span(
            operation,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "gen_ai.operation.name": operation,
                "http.request.method": scope.get("method", "POST"),
                "http.route": call.route,
                "tollway.request_id": call.request_id,
            },
        )
        traced = _Traced(span, operation)
        traced.reset = self._current.set(traced)

        async def sending(message: Message) -> None:
            self._watch(traced, message)
            await send(message)

        return sending

    def ended(self, call: Call) -> None:
        traced = self._current.get()
        if traced is None:
            return
        if traced.reset is not None:
            self._current.reset(traced.reset)
        if traced.try_span is not None:  # a try the policy never heard the end of (cannot happen: defensive)
            self._end_try(traced, None, "cancelled")
        if traced.body is not None:
            self._read_facts(traced, bytes(traced.body))
        span = traced.span
        operation = traced.operation
        if operation == "generate_content" and "mbed" in call.route:  # :embedContent, :batchEmbedContents
            operation = "embeddings"
        # as counted (a stream whose client went away: 499, though 200 was sent), else as sent
        status = call.status or traced.status or 499
        attributes: dict[str, Any] = {"gen_ai.operation.name": operation}
        requested = call.requested_model if call.requested_model != "-" else None
        if requested is not None:
            attributes["gen_ai.request.model"] = requested
            span.update_name(f"{operation} {requested}")
        if call.provider != "-":
            facts = self._providers(call.provider)
            attributes["gen_ai.provider.name"] = facts.system if facts is not None else call.provider
        if traced.response_model is not None:
            attributes["gen_ai.response.model"] = traced.response_model
        error = str(status) if status >= 400 else None
        if error is not None:
            attributes["error.type"] = error
        metered = dict(attributes)  # the metrics' attributes: the operation, provider, models, error
        attributes["http.response.status_code"] = status
        attributes["http.route"] = call.route  # a Gemini path's method is known once it was read
        if call.model != "-":
            attributes["tollway.model"] = call.model
        if call.consumer is not None:
            attributes["tollway.consumer"] = call.consumer.username
        if call.provider != "-":
            attributes["tollway.provider"] = call.provider
            attributes["tollway.attempts"] = len(call.attempts) + 1
        if traced.response_id is not None:
            attributes["gen_ai.response.id"] = traced.response_id
        if traced.finish_reasons:
            attributes["gen_ai.response.finish_reasons"] = traced.finish_reasons
        usage = call.usage
        if usage is not None:
            prompt = usage.input + usage.cache_read + usage.cache_write
            attributes["gen_ai.usage.input_tokens"] = prompt
            attributes["gen_ai.usage.output_tokens"] = usage.output
            if usage.cache_read:
                attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read
            if usage.cache_write:
                attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write
            counted = {k: v for k, v in metered.items() if k != "error.type"}
            self._tokens.record(prompt, {**counted, "gen_ai.token.type": "input"})
            self._tokens.record(usage.output, {**counted, "gen_ai.token.type": "output"})
        span.set_attributes(attributes)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        self._duration.record(time.perf_counter() - call.started, metered)
        span.end()

    # the answer, as it goes to the client ----------------------------------------------------------

    def _watch(self, traced: _Traced, message: Message) -> None:
        if message["type"] == "http.response.start":
            traced.status = message["status"]
            for name, value in message.get("headers", ()):
                if name == b"content-type":
                    traced.streamed = b"event-stream" in value
            if traced.status is not None and traced.status < 400 and not traced.streamed:
                traced.body = bytearray()
            return
        body = message.get("body", b"")
        if not body:
            return
        if traced.streamed:
            for line in body.split(b"\n"):
                if line.startswith(b"data:") and (traced.response_model is None or _ends(line)):
                    self._read_facts(traced, line[5:])
        elif traced.body is not None:
            if len(traced.body) + len(body) > MAX_WATCHED_BODY:
                traced.body = None
            else:
                traced.body += body

    @staticmethod
    def _read_facts(traced: _Traced, data: bytes) -> None:
        try:
            answer = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(answer, dict):
            return
        for holder in (answer, answer.get("message"), answer.get("response")):
            if isinstance(holder, dict):
                model = holder.get("model", holder.get("modelVersion"))
                if traced.response_model is None and isinstance(model, str):
                    traced.response_model = model
                ident = holder.get("id", holder.get("responseId"))
                if traced.response_id is None and isinstance(ident, str):
                    traced.response_id = ident
        traced.finish_reasons.extend(_finish_reasons(answer))

    # tries of upstream targets ---------------------------------------------------------------------

    def policy(self, inner: TargetPolicy) -> TargetPolicy:
        """`inner`, with a span for each try of a target made while a traced call runs."""
        return _TracedTries(inner, self)

    def try_started(self, target: Target) -> None:
        traced = self._current.get()
        if traced is None:
            return  # not a traced call (a health check, a model list)
        if traced.try_span is not None:
            self._end_try(traced, None, "cancelled")
        facts = self._providers(target.provider.name)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": traced.operation,
            "gen_ai.provider.name": facts.system if facts is not None else target.provider.name,
            "gen_ai.request.model": target.model,
            "http.request.method": "POST",
            "tollway.provider": target.provider.name,
        }
        if facts is not None and facts.address is not None:
            attributes["server.address"] = facts.address
            if facts.port is not None:
                attributes["server.port"] = facts.port
        span = self._tracer.start_span(
            "POST", context=set_span_in_context(traced.span), kind=SpanKind.CLIENT, attributes=attributes
        )
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=set_span_in_context(span))
        traced.try_span = span
        traced.try_reset = TRACE_HEADERS.set(tuple(carrier.items()))

    def try_finished(self, attempt: Attempt) -> None:
        traced = self._current.get()
        if traced is None or traced.try_span is None:
            return
        if attempt.cause == "ok":
            error = str(attempt.status) if attempt.status is not None and attempt.status >= 400 else None
        else:
            error = str(attempt.status) if attempt.cause == "status" else attempt.cause
        self._end_try(traced, attempt.status, error)

    def _end_try(self, traced: _Traced, status: int | None, error: str | None) -> None:
        span = traced.try_span
        assert span is not None
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        traced.try_span = None
        if traced.try_reset is not None:
            try:
                TRACE_HEADERS.reset(traced.try_reset)
            except ValueError:  # set in another context (cannot happen within one task)
                TRACE_HEADERS.set(())
            traced.try_reset = None


class _TracedTries:
    """A target policy that also tells the telemetry when each try starts and ends."""

    def __init__(self, inner: TargetPolicy, telemetry: GenAiTelemetry) -> None:
        self._inner = inner
        self._telemetry = telemetry

    def targets(self, route: Route, call: Admit) -> Sequence[Target]:
        return self._inner.targets(route, call)

    def started(self, target: Target) -> None:
        self._inner.started(target)
        self._telemetry.try_started(target)

    def finished(self, attempt: Attempt) -> None:
        self._inner.finished(attempt)
        self._telemetry.try_finished(attempt)


def _ends(line: bytes) -> bool:
    """Whether a stream event may state a finish reason (read in full only then)."""
    if b'"finish_reason":' in line:  # OpenAI: every chunk has one, null until the last
        return b'"finish_reason":null' not in line
    return (
        b"finishReason" in line  # Gemini
        or b'"stop_reason":"' in line  # Anthropic's message_delta
        or b'"response.completed"' in line  # Responses
        or b'"response.incomplete"' in line
    )


def _finish_reasons(answer: dict[str, Any]) -> list[str]:
    """The finish reasons an answer (or a stream event) states, as the provider wrote them."""
    found: list[str] = []
    for choice in answer.get("choices") or answer.get("candidates") or ():
        if isinstance(choice, dict):
            reason = choice.get("finish_reason", choice.get("finishReason"))
            if isinstance(reason, str):
                found.append(reason)
    for holder in (answer, answer.get("delta")):
        if isinstance(holder, dict) and isinstance(holder.get("stop_reason"), str):
            found.append(holder["stop_reason"])
    response = answer.get("response") if answer.get("object") != "response" else answer
    if isinstance(response, dict) and response.get("status") in ("completed", "incomplete"):
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        found.append(reason if isinstance(reason, str) else response["status"])
    return found
