"""Relaying an answer in hand: a whole body, a large body as it arrives, or a stream event by event.

A relaying sends the answer on up to its end and says what the call came to (an `Outcome`: status,
usage, streamed, partial, estimated); the flow then writes the call's one usage record, and only then
is the end sent (`end`), so a kill after the client saw an answer's end never loses its record (a
stream's end is its [DONE] event). Nothing here records usage. Memory per request stays bounded: large
unary answers and streams are relayed as they arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tollway.errors import DomainError, UpstreamFailedError
from tollway.gateway.call import Call
from tollway.gateway.decode import json_object
from tollway.gateway.endpoint import LlmEndpoint, Parsed
from tollway.gateway.errors import OPENAI
from tollway.gateway.failover import Answer
from tollway.gateway.hooks import Charged
from tollway.gateway.http import Receive, Send, send_bytes
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.providers.base import UpstreamError
from tollway.gateway.routing import Target
from tollway.gateway.streaming import SSEFramer, StreamTracker
from tollway.gateway.usage import estimate_prompt_tokens, estimate_tokens_from_text, usage_block_from_tail
from tollway.metering.llm import TokenUsage
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
FAILED = 500  # the status recorded for a call whose answer the gateway failed to relay


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    max_body_bytes: int
    drain_timeout_s: float
    max_buffered_response_bytes: int = 8 * 1024 * 1024


@dataclass(slots=True)
class Outcome:
    """What a call came to, as its usage record says it: the status, the usage (None: none known), and
    whether it streamed, broke off before its end (partial) or had its usage estimated."""

    status: int
    usage: TokenUsage | None = None
    streamed: bool = False
    partial: bool = False
    estimated: bool = False


class Relaying(Protocol):
    """One answer being relayed: `relay`, then (after the flow recorded the outcome) `end`."""

    failure: str | None  # how the served try broke after its answer started ("timeout", "unreachable")

    async def relay(self) -> Outcome:
        """Send the answer on, all but its end; what the call came to."""
        ...

    def broken(self, streamed: bool) -> Outcome:
        """What the call came to when `relay` raised (`streamed`: the client asked for a stream)."""
        ...

    async def end(self) -> int:
        """Send the answer's end; the status the client saw. Raises the gateway's own error instead where
        the upstream's answer is not relayed (it refused Tollway's credentials)."""
        ...


def upstream_auth_failed(provider: str) -> UpstreamFailedError:
    """The gateway's own 502 for an upstream that refused Tollway's credentials (its body is not relayed)."""
    return UpstreamFailedError(
        f"The provider rejected Tollway's credentials for provider '{provider}'. This is a gateway "
        "configuration problem, not a problem with your API key; the gateway's operator has to fix it.",
        code="upstream_auth_failed",
    )


class Relay:
    """What every relaying shares: the metrics, the limits, the scrubber."""

    def __init__(self, metrics: GatewayMetrics, limits: GatewayLimits, scrubber: Scrubber) -> None:
        self.metrics = metrics
        self.limits = limits
        self.scrubber = scrubber

    def credentials_refused(self, provider: str) -> UpstreamFailedError:
        """Count an upstream's 401/403 to Tollway's credentials and make the gateway's 502 for it."""
        self.metrics.upstream_auth_failures.inc((provider,))
        return upstream_auth_failed(provider)


class WholeAnswer:
    """A unary answer read whole (up to `max_buffered_response_bytes`, and any error answer): nothing is
    sent before its end."""

    __slots__ = (
        "_answer",
        "_body",
        "_call",
        "_charged",
        "_endpoint",
        "_error",
        "_parsed",
        "_relay",
        "_send",
        "_status",
    )
    failure: str | None = None  # only a stream breaks off after its answer started

    def __init__(
        self,
        relay: Relay,
        call: Call,
        answer: Answer,
        send: Send,
        endpoint: LlmEndpoint,
        parsed: Parsed,
        charged: Charged | None = None,
    ) -> None:
        """`charged`: a reservation that prices the call: its spend headers (hooks.Charged) go on the response."""
        self._relay, self._call, self._answer, self._send = relay, call, answer, send
        self._endpoint, self._parsed, self._charged = endpoint, parsed, charged
        self._error: DomainError | None = None

    async def relay(self) -> Outcome:
        relay, call, answer = self._relay, self._call, self._answer
        provider = answer.target.provider.name
        raw = answer.head
        status = answer.response.status
        parsed = json_object(raw)
        if status < 400 and parsed is None:
            status = 502
            raw = b"a response that is not a JSON object: " + raw[:200]
        self._status = status
        if status in CREDENTIALS_REFUSED:
            relay.metrics.upstream_errors.inc((provider, str(status)))
            self._error = relay.credentials_refused(provider)
            return Outcome(502)
        if status >= 400:
            relay.metrics.upstream_errors.inc((provider, str(status)))
            self._body = relay.scrubber.bytes(self._endpoint.errors.of_upstream(raw, status), call.key)
            return Outcome(status)
        assert parsed is not None
        self._body = relay.scrubber.bytes(raw, call.key)  # an upstream may echo a credential in a success too
        reported = parsed.get("usage", parsed.get("usageMetadata"))  # Gemini-format answers: usageMetadata
        if isinstance(reported, dict):
            return Outcome(status, self._endpoint.usage_of(reported))
        relay.metrics.usage_estimated.inc((provider,))
        return Outcome(status, self._endpoint.estimate(self._parsed, parsed), False, False, True)

    def broken(self, streamed: bool) -> Outcome:
        return Outcome(FAILED, streamed=streamed)

    async def end(self) -> int:
        if self._error is not None:
            raise self._error
        status, answer = self._status, self._answer
        extra = [*answer.response.relayed_headers, *served_by(answer.target)]
        if self._charged is not None:  # settled by now: its cost, budget and rate-limit headers
            extra += self._charged.spend_headers()
        await send_bytes(
            self._send, status, self._body, self._call.id_bytes, content_type=b"application/json", extra=extra
        )
        return status


class LargeAnswer:
    """A unary answer too large to buffer: relayed as it arrives, keeping only a tail in memory to find its
    usage block (OpenAI puts it last); the tail is its end."""

    __slots__ = ("_answer", "_call", "_relay", "_rest", "_send", "_tail", "_usage_of")
    failure: str | None = None  # only a stream breaks off after its answer started

    def __init__(
        self,
        relay: Relay,
        call: Call,
        answer: Answer,
        rest: AsyncIterator[bytes],
        send: Send,
        usage_of: Callable[[dict[str, Any]], TokenUsage],
    ) -> None:
        """`rest`: what is left of the answer after its head (the part failover read)."""
        self._relay, self._call, self._answer, self._rest, self._send = relay, call, answer, rest, send
        self._usage_of = usage_of
        self._tail = b""

    async def relay(self) -> Outcome:
        relay, call, answer, send = self._relay, self._call, self._answer, self._send
        target, status = answer.target, answer.response.status
        relayed = [*answer.response.relayed_headers, *served_by(target)]
        headers = [(b"content-type", b"application/json"), (b"x-request-id", call.id_bytes), *relayed]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        tail = relay.scrubber.bytes(answer.head, call.key)
        broken = False
        try:
            async for chunk in self._rest:
                # Scrubbed before any of it is sent: a secret split over two chunks is cut out whole (the
                # tail kept back is far longer than any secret).
                tail = relay.scrubber.bytes_after(tail + chunk, len(tail), call.key)
                if len(tail) > RESPONSE_TAIL_BYTES:
                    await send({"type": "http.response.body", "body": tail[:-RESPONSE_TAIL_BYTES], "more_body": True})
                    tail = tail[-RESPONSE_TAIL_BYTES:]
        except UpstreamError:
            broken = True
            relay.metrics.upstream_errors.inc((target.provider.name, "broken"))
        self._tail = tail
        reported = None if broken else usage_block_from_tail(tail)
        usage = self._usage_of(dict(reported)) if reported is not None else None
        if usage is None:
            relay.metrics.usage_estimated.inc((target.provider.name,))
        return Outcome(status, usage or TokenUsage(), partial=broken, estimated=usage is None)

    def broken(self, streamed: bool) -> Outcome:
        return Outcome(FAILED, streamed=streamed)

    async def end(self) -> int:
        await self._send({"type": "http.response.body", "body": self._tail, "more_body": False})
        return self._answer.response.status


class StreamAnswer:
    """A stream relayed event by event. `relay` stops at its [DONE] event (the answer is complete: it is
    recorded before the client can see its end, the SDK stopping there) or where the stream ends first;
    `end` relays the rest. A client that goes away is no longer sent to, but the stream is read on until
    its usage arrives (at most `drain_timeout_s`); a cut stream ends with the endpoint's error event."""

    def __init__(
        self,
        relay: Relay,
        call: Call,
        answer: Answer,
        receive: Receive,
        send: Send,
        tracker: StreamTracker,
        prompt: dict[str, Any],
        cut_tail: bytes | None,
    ) -> None:
        """`answer`: its head is the stream's first chunk (failover waits for it); `prompt`: what a prompt
        estimate reads, should the stream report no usage."""
        self._relay, self._call, self._target, self._response = relay, call, answer.target, answer.response
        self._receive, self._send, self._tracker, self._prompt = receive, send, tracker, prompt
        self._cut_tail = OPENAI.stream_cut if cut_tail is None else cut_tail
        self._pending = answer.head
        self._chunks = _nothing() if answer.rest is None else answer.rest
        self._framer = SSEFramer()
        self._gone = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None  # once the response started
        self._client_gone = False
        self._cut = False
        self._drain_deadline = 0.0
        self._held: bytes | None = None  # what is left to send of the [DONE] event's chunk
        self.failure: str | None = None

    async def relay(self) -> Outcome:
        relayed = [*self._response.relayed_headers, *served_by(self._target)]
        headers = [*SSE_HEADERS, (b"x-request-id", self._call.id_bytes), *relayed]
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        self._watcher = asyncio.create_task(_watch_disconnect(self._receive, self._gone))
        self._held = await self._pump(b"", until_done=True)
        if self._held is not None:
            return self._outcome(partial=self._client_gone)
        return self._outcome(partial=self._client_gone or self._cut or not self._tracker.done)

    def broken(self, streamed: bool) -> Outcome:
        # The server cut this request (a stop whose grace period ran out) or a translator failed: what was
        # streamed was still spent (partial). Before the response started: the gateway failed the call.
        if self._watcher is None:
            return Outcome(FAILED, streamed=streamed)
        return self._outcome(partial=True)

    async def end(self) -> int:
        if self._held is not None:
            held, self._held = self._held, None
            await self._pump(held, until_done=False)
        if self._client_gone:
            return 499
        tail = b""
        if self._cut or (not self._tracker.done and self._tracker.error is None):
            tail = self._cut_tail
        await self._send({"type": "http.response.body", "body": tail, "more_body": False})
        return 200

    def _outcome(self, *, partial: bool) -> Outcome:
        """The upstream's usage, or an estimate (marked so) when it sent none."""
        tracker = self._tracker
        usage = tracker.usage
        if usage is not None:
            return Outcome(200, usage, streamed=True, partial=partial)
        self._relay.metrics.usage_estimated.inc((self._target.provider.name,))
        output = tracker.content_chunks or estimate_tokens_from_text(tracker.content_chars)
        usage = TokenUsage(input=estimate_prompt_tokens(self._prompt), output=output)
        return Outcome(200, usage, streamed=True, partial=partial, estimated=True)

    async def _pump(self, out: bytes, *, until_done: bool) -> bytes | None:
        """Send `out`, then relay the stream until it ends (None); with `until_done`, stop at the [DONE]
        event and return what is left to send of its chunk."""
        relay, tracker, framer, gone, send, chunks = (
            self._relay,
            self._tracker,
            self._framer,
            self._gone,
            self._send,
            self._chunks,
        )
        key = self._call.key
        loop = asyncio.get_running_loop()
        try:
            while True:
                if out and not self._client_gone:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                try:
                    if self._pending:
                        chunk, self._pending = self._pending, b""
                    elif self._client_gone:
                        remaining = self._drain_deadline - loop.time()
                        if remaining <= 0 or tracker.usage is not None:
                            break
                        chunk = await asyncio.wait_for(anext(chunks), remaining)
                    else:
                        chunk = await anext(chunks)
                except (StopAsyncIteration, TimeoutError):
                    break
                except UpstreamError as error:
                    self._cut = True
                    self.failure = "timeout" if error.timeout else "unreachable"
                    reason = "stream_timeout" if error.timeout else "broken_stream"
                    relay.metrics.upstream_errors.inc((self._target.provider.name, reason))
                    break
                out = relay.scrubber.bytes(b"".join([tracker.relay(event) for event in framer.feed(chunk)]), key)
                if not self._client_gone and gone.is_set():
                    self._client_gone = True
                    self._drain_deadline = loop.time() + relay.limits.drain_timeout_s
                if until_done and tracker.done:
                    # Yield once first: when the upstream's bytes are all buffered this loop never waits,
                    # and the disconnect watcher would not yet have seen a client that is already gone.
                    await asyncio.sleep(0)
                    self._client_gone = self._client_gone or gone.is_set()
                    return out
        except BaseException:
            self._stop()
            self._response.close()
            raise
        self._stop()
        if self._client_gone or self._cut:
            self._response.close()
        if gone.is_set():
            self._client_gone = True
        return None

    def _stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()


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
