"""After the upstream answered: relay the answer (whole, large, or streamed) and record its usage.

`Relay` is the half of the request flow (flow.py) that runs once a provider response is in hand.
Memory per request stays bounded:
large unary answers and streams are relayed as they arrive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tollway.errors import UpstreamFailedError
from tollway.gateway.access_log import AccessLog
from tollway.gateway.decode import json_object
from tollway.gateway.errors import OPENAI, as_openai_error
from tollway.gateway.hooks import Reservation
from tollway.gateway.http import Receive, Send, send_bytes
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.providers.base import UpstreamError, UpstreamResponse
from tollway.gateway.routing import Route, Target
from tollway.gateway.state import GatewayState
from tollway.gateway.streaming import SSEFramer, StreamTracker
from tollway.gateway.usage import (
    estimate_prompt_tokens,
    estimate_tokens_from_text,
    from_openai_chat,
    usage_block_from_tail,
)
from tollway.identity.key_index import Identity
from tollway.metering.intents import CallIntent, interrupted_call
from tollway.metering.llm import AttemptRecord, LlmCall, TokenUsage
from tollway.metering.sink import UsageSink
from tollway.scrub import Scrubber

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
RESPONSE_TAIL_BYTES = 64 * 1024
# An upstream refusing Tollway's own credentials: never relayed as is (the consumer's key is not at fault,
# and an upstream may echo the credential it got), but answered as the gateway's 502.
CREDENTIALS_REFUSED = frozenset({401, 403})


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    max_body_bytes: int
    drain_timeout_s: float
    max_buffered_response_bytes: int = 8 * 1024 * 1024


@dataclass(slots=True)
class Call:
    """One request in flight."""

    request_id: str
    route: str
    started: float
    consumer: Identity | None = None
    model: str = "-"  # the model entry's name (metric labels); the client may have asked by another name
    requested_model: str = "-"  # the name the client asked for
    provider: str = "-"  # the provider that served it, once recorded
    usage: TokenUsage | None = None
    reservation: Reservation | None = None  # once admitted; settled with the usage record
    recorded: bool = False  # a usage record was written (at most one per call)
    attempts: tuple[AttemptRecord, ...] = ()  # failed tries of other targets before the one that served it
    failure: str | None = None  # how the served try broke after its answer started ("timeout", "unreachable")
    key: bytes | None = None  # the key the consumer presented: scrubbed from whatever the call relays
    intent: CallIntent | None = None  # journaled before the upstream call; closed by the usage record

    @property
    def id_bytes(self) -> bytes:
        return self.request_id.encode()


def is_event_stream(response: UpstreamResponse) -> bool:
    """A successful answer that streams (an upstream may answer a stream request with plain JSON)."""
    return response.status == 200 and "event-stream" in response.content_type


def upstream_auth_failed(provider: str) -> UpstreamFailedError:
    """The gateway's own 502 for an upstream that refused Tollway's credentials (its body is not relayed)."""
    return UpstreamFailedError(
        f"The provider rejected Tollway's credentials for provider '{provider}'. This is a gateway "
        "configuration problem, not a problem with your API key; the gateway's operator has to fix it.",
        code="upstream_auth_failed",
    )


class Relay:
    state: GatewayState
    _pipeline: UsageSink
    _access_log: AccessLog | None
    _metrics: GatewayMetrics
    _limits: GatewayLimits
    _scrubber: Scrubber

    def scrub(self, body: bytes, call: Call) -> bytes:
        """`body` without any credential Tollway holds nor the key this call presented."""
        return self._scrubber.bytes(body, call.key)

    def begin(
        self,
        call: Call,
        route: Route,
        targets: Sequence[Target],
        prompt: dict[str, Any],
        streamed: bool,
        started_at: datetime,
    ) -> None:
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
            streamed=streamed,
            input_tokens=estimate_prompt_tokens(prompt),
            price=self.state.prices.get((provider, upstream_model)),
            requested_model=None if call.requested_model in (route.model, "-") else call.requested_model,
        )
        self._pipeline.begin(intent)
        call.intent = intent

    def credentials_refused(self, provider: str) -> UpstreamFailedError:
        """Count an upstream's 401/403 to Tollway's credentials and make the gateway's 502 for it."""
        self._metrics.upstream_auth_failures.inc((provider,))
        return upstream_auth_failed(provider)

    async def finish_unary(
        self,
        call: Call,
        route: Route,
        target: Target,
        response: UpstreamResponse,
        started_at: datetime,
        estimate: Callable[[dict[str, Any]], TokenUsage],
        send: Send,
        *,
        usage_of: Callable[[dict[str, Any]], TokenUsage] = from_openai_chat,
        error_shape: Callable[[bytes, int], bytes] | None = None,
        read: tuple[bytes, AsyncIterator[bytes] | None] | None = None,
    ) -> None:
        """Send a complete upstream answer on, after recording its usage (estimated if it reported none).

        `read`: what was already read of the answer (by `read_up_to`, before failover gave it up).

        Answers up to `max_buffered_response_bytes` are read whole; a larger one is relayed as it
        arrives, keeping only a tail in memory to find its usage block (OpenAI puts it last).
        """
        try:
            raw, rest = (
                read if read is not None else await read_up_to(response, self._limits.max_buffered_response_bytes)
            )
            if rest is not None and response.status < 400:
                await self.relay_large_unary(
                    call,
                    route,
                    target,
                    response.status,
                    raw,
                    rest,
                    started_at,
                    send,
                    usage_of=usage_of,
                    relayed=[*response.relayed_headers, *served_by(target)],
                )
                return
        except UpstreamError as error:
            self._metrics.upstream_errors.inc((target.provider.name, "broken"))
            self.record(call, route, target, 502, False, None, started_at=started_at)
            raise UpstreamFailedError(f"The upstream provider broke the connection: {error}") from None
        status = response.status
        usage: TokenUsage | None = None
        estimated = False
        body = raw
        parsed = json_object(raw)
        if status < 400 and parsed is None:
            status = 502
            raw = b"a response that is not a JSON object: " + raw[:200]
        if status in CREDENTIALS_REFUSED:
            self._metrics.upstream_errors.inc((target.provider.name, str(status)))
            self.record(call, route, target, 502, False, None, started_at=started_at)
            raise self.credentials_refused(target.provider.name)
        if status >= 400:
            self._metrics.upstream_errors.inc((target.provider.name, str(status)))
            body = self.scrub((error_shape or as_openai_error)(raw, status), call)
        else:
            assert parsed is not None
            body = self.scrub(raw, call)  # an upstream may echo a credential in a success too
            reported = parsed.get("usage", parsed.get("usageMetadata"))  # Gemini-format answers: usageMetadata
            if isinstance(reported, dict):
                usage = usage_of(reported)
            else:
                self._metrics.usage_estimated.inc((target.provider.name,))
                usage, estimated = estimate(parsed), True
        self.record(call, route, target, status, False, usage, started_at=started_at, estimated=estimated)
        await send_bytes(
            send,
            status,
            body,
            call.id_bytes,
            content_type=b"application/json",
            extra=[*response.relayed_headers, *served_by(target)],
        )
        self.observe(call, status)

    async def relay_large_unary(
        self,
        call: Call,
        route: Route,
        target: Target,
        status: int,
        head: bytes,
        rest: AsyncIterator[bytes],
        started_at: datetime,
        send: Send,
        *,
        usage_of: Callable[[dict[str, Any]], TokenUsage] = from_openai_chat,
        relayed: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        headers = [(b"content-type", b"application/json"), (b"x-request-id", call.id_bytes), *relayed]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        tail = self.scrub(head, call)
        broken = False
        try:
            async for chunk in rest:
                # Scrubbed before any of it is sent: a secret split over two chunks is cut out whole (the
                # tail kept back is far longer than any secret).
                tail = self._scrubber.bytes_after(tail + chunk, len(tail), call.key)
                if len(tail) > RESPONSE_TAIL_BYTES:
                    await send({"type": "http.response.body", "body": tail[:-RESPONSE_TAIL_BYTES], "more_body": True})
                    tail = tail[-RESPONSE_TAIL_BYTES:]
        except UpstreamError:
            broken = True
            self._metrics.upstream_errors.inc((target.provider.name, "broken"))
        reported = None if broken else usage_block_from_tail(tail)
        usage = usage_of(dict(reported)) if reported is not None else None
        if usage is None:
            self._metrics.usage_estimated.inc((target.provider.name,))
        self.record(
            call,
            route,
            target,
            status,
            False,
            usage or TokenUsage(),
            started_at=started_at,
            partial=broken,
            estimated=usage is None,
        )
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        self.observe(call, status)

    async def relay_stream(
        self,
        call: Call,
        route: Route,
        target: Target,
        prompt: dict[str, Any],
        response: UpstreamResponse,
        started_at: datetime,
        receive: Receive,
        send: Send,
        *,
        tracker: StreamTracker,
        cut_tail: bytes | None = None,
        head: tuple[bytes, AsyncIterator[bytes] | None] | None = None,
    ) -> None:
        """Relay a stream as it arrives and record it once; `prompt` is what a prompt estimate reads.

        `head`: the first chunk, already read (failover waits for it), and the rest of the stream."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    *SSE_HEADERS,
                    (b"x-request-id", call.id_bytes),
                    *response.relayed_headers,
                    *served_by(target),
                ],
            }
        )
        if call.intent is not None:
            call.intent.progress = lambda: tracker.content_chunks  # read only when the intent is carried
        framer = SSEFramer()
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        cut = False
        client_gone = False
        pending = b""  # the first chunk, read before the stream started (failover)
        chunks: AsyncIterator[bytes]
        if head is None:
            chunks = response.iter_chunks()
        else:
            pending, rest = head
            chunks = _nothing() if rest is None else rest
        loop = asyncio.get_running_loop()
        drain_deadline = 0.0
        recorded = False
        try:
            while True:
                try:
                    if pending:
                        chunk, pending = pending, b""
                    elif client_gone:
                        remaining = drain_deadline - loop.time()
                        if remaining <= 0 or tracker.usage is not None:
                            break
                        chunk = await asyncio.wait_for(anext(chunks), remaining)
                    else:
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    break
                except UpstreamError as error:
                    cut = True
                    call.failure = "timeout" if error.timeout else "unreachable"
                    reason = "stream_timeout" if error.timeout else "broken_stream"
                    self._metrics.upstream_errors.inc((target.provider.name, reason))
                    break
                out = self.scrub(b"".join([tracker.relay(event) for event in framer.feed(chunk)]), call)
                if not client_gone and gone.is_set():
                    client_gone = True
                    drain_deadline = loop.time() + self._limits.drain_timeout_s
                if tracker.done and not recorded:
                    # [DONE]: the answer is complete. Record it before the client can see the end (the SDK
                    # stops there), not after the upstream closes the body: a SIGKILL in between lost it.
                    # Yield once first: when the upstream's bytes are all buffered this loop never waits,
                    # and the disconnect watcher would not yet have seen a client that is already gone.
                    await asyncio.sleep(0)
                    client_gone = client_gone or gone.is_set()
                    self.record_stream(call, route, target, prompt, tracker, started_at, partial=client_gone)
                    recorded = True
                if out and not client_gone:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
        except BaseException:
            # The server cut this request (a stop whose grace period ran out) or a translator failed:
            # what was streamed was still spent, so it is recorded (partial) before the error goes on.
            response.close()
            if not recorded:
                self.record_stream(call, route, target, prompt, tracker, started_at, partial=True)
            raise
        finally:
            watcher.cancel()
            if client_gone or cut:
                response.close()
        if gone.is_set():
            client_gone = True
        if not recorded:
            partial = client_gone or cut or not tracker.done
            self.record_stream(call, route, target, prompt, tracker, started_at, partial=partial)
        if not client_gone:
            tail = b""
            if cut or (not tracker.done and tracker.error is None):
                tail = OPENAI.stream_cut if cut_tail is None else cut_tail
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        self.observe(call, 200 if not client_gone else 499)

    # usage and metrics ----------------------------------------------------------------------------

    def record_stream(
        self,
        call: Call,
        route: Route,
        target: Target,
        prompt: dict[str, Any],
        tracker: StreamTracker,
        started_at: datetime,
        *,
        partial: bool,
    ) -> None:
        """Record a relayed stream: the upstream's usage, or an estimate (marked so) when it sent none."""
        usage = tracker.usage
        estimated = usage is None
        if usage is None:
            self._metrics.usage_estimated.inc((target.provider.name,))
            usage = TokenUsage(
                input=estimate_prompt_tokens(prompt),
                output=tracker.content_chunks or estimate_tokens_from_text(tracker.content_chars),
            )
        self.record(call, route, target, 200, True, usage, started_at=started_at, partial=partial, estimated=estimated)

    def record(
        self,
        call: Call,
        route: Route,
        target: Target,
        status: int,
        streamed: bool,
        usage: TokenUsage | None,
        *,
        started_at: datetime,
        partial: bool = False,
        estimated: bool = False,
    ) -> None:
        assert call.consumer is not None
        if call.recorded:
            return  # one usage record per call, whatever path reaches here twice
        call.recorded = True
        provider = target.provider.name
        call.provider, call.usage = provider, usage
        record = LlmCall(
            request_id=call.request_id,
            subject=call.consumer.username,
            time=started_at,
            model=route.model,
            upstream_model=target.model,
            provider=provider,
            route=call.route,
            status_code=status,
            streamed=streamed,
            usage=usage,
            partial=partial,
            estimated=estimated,
            price=self.state.prices.get((provider, target.model)),
            attempts=call.attempts,
            requested_model=None if call.requested_model in (route.model, "-") else call.requested_model,
            duration_ms=int((time.perf_counter() - call.started) * 1000),
        )
        self._pipeline.record_call(record)
        if call.reservation is not None:
            call.reservation.settle(record)
        if usage is not None:
            for token_type, tokens in usage.by_type().items():
                if tokens:
                    self._metrics.tokens.inc((route.model, provider, token_type), tokens)

    def record_interrupted(self, call: Call) -> None:
        """The call's usage record from its intent, flagged interrupted: the gateway stopped before an answer."""
        assert call.intent is not None
        if call.recorded:
            return
        call.recorded = True
        record = interrupted_call(call.intent)
        self._pipeline.record_call(record)
        if call.reservation is not None:
            call.reservation.settle(record)

    def observe(self, call: Call, status: int) -> None:
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


async def read_up_to(response: UpstreamResponse, limit: int) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """The whole body if it fits in `limit`; else what was read so far and the rest of the stream."""
    if response.content_length is not None and response.content_length <= limit:
        return await response.read(), None
    chunks = response.iter_chunks()
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(parts), chunks
    return b"".join(parts), None


def served_by(target: Target) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    """The response headers naming the target that served a call."""
    return (b"x-tollway-provider", target.provider.name.encode()), (b"x-tollway-model", target.model.encode())


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return
