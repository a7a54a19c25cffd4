"""Failover before the first byte: try a request's targets in turn until one gives an answer the client can have.

A try ends in an answer (relayed), or fails: a retryable status, a timeout, an unreachable upstream, or
a target that cannot take the request faithfully (its format cannot say what the request asks: skipped,
no network call). Nothing reaches the client until a try succeeds: a unary answer is read, a stream's
first chunk is in hand. Once a stream has started, a failure ends it as a cut stream (relay.py); no
second answer is ever spliced onto the first. Every failed try is kept on the call as a zero-token
attempt (its usage record carries them; they are never billed) and reported to the target policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from random import Random
from typing import Any

from tollway.clock import Clock
from tollway.errors import UnavailableError, UpstreamFailedError, UpstreamTimeoutError, ValidationError
from tollway.gateway.hooks import Attempt, TargetPolicy
from tollway.gateway.providers.base import UpstreamError, UpstreamRequest, UpstreamResponse
from tollway.gateway.relay import Call, Relay, is_event_stream, read_up_to
from tollway.gateway.resilience import retry_after_s
from tollway.gateway.routing import Route, Target
from tollway.gateway.usage import estimate_prompt_tokens
from tollway.metering.llm import AttemptRecord

Sleep = Callable[[float], Awaitable[None]]
FAILED = 500  # the status recorded for a call whose answer the gateway failed to relay


@dataclass(slots=True)
class Answer:
    """An upstream answer in hand, nothing of it sent yet: a unary body read (up to the buffer limit),
    or a stream's first chunk."""

    target: Target
    response: UpstreamResponse
    head: bytes
    rest: AsyncIterator[bytes] | None  # what is left to read; None: `head` is all of it
    began: float  # loop time the try began
    ttfb_s: float | None
    cause: str = "ok"  # "status": a retryable status, served because no try was left
    reported: bool = False  # the target policy already heard how this try went


class _Failed(Exception):
    """One try failed (timeout or unreachable) before anything was answered."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause

    @classmethod
    def of(cls, error: UpstreamError) -> _Failed:
        return cls("timeout" if error.timeout else "unreachable", str(error))


class Failover(Relay):
    """The flow's step that finds an answer (flow.Flow is one; the relay half sends it on)."""

    _policy: TargetPolicy | None
    _clock: Clock
    _rng: Random
    _sleep: Sleep

    async def send_upstream(
        self,
        call: Call,
        route: Route,
        targets: Sequence[Target],
        build: Callable[[Target], tuple[bytes, dict[str, Any]]],
        path: str,
        *,
        stream: bool,
        started_at: datetime,
        prompt: Mapping[str, Any] | None = None,
    ) -> Answer:
        """The first answer a client can have, trying `targets` in order (then round again while
        `max_attempts` allows, after a backoff); raises the most telling error when every try failed.

        `prompt`: what a prompt-size estimate reads, to pass over a target whose known context window it
        exceeds (while another target remains to be tried: the last one is always asked)."""
        count = len(targets)
        if count == 0:
            raise UnavailableError(f"The model '{route.model}' has no target to send the request to.")
        retry = targets[0].retry
        max_attempts = retry.max_attempts or count
        loop = asyncio.get_running_loop()
        deadline = None if retry.deadline_s is None else loop.time() + retry.deadline_s
        policy = self._policy
        failed: list[AttemptRecord] = []  # in the order they happened
        held: Answer | None = None  # the last retryable-status answer: served if no try does better
        held_at = -1  # its place in `failed`
        last_error: tuple[Target, _Failed, int] | None = None  # and its place in `failed`
        skip_error: ValidationError | None = None
        unusable: set[int] = set()  # targets this request will not try again (skipped, or resting after 429)
        resting: dict[int, float] = {}  # Retry-After of a target's last answer
        made = 0
        turn = 0
        prompt_tokens = -1  # estimated once, when a context window makes it matter
        while made < max_attempts and len(unusable) < count:
            index, repeat = turn % count, turn // count
            turn += 1
            if index in unusable:
                continue
            target = targets[index]
            wait = 0.0
            if repeat:  # this target was tried already: back off first
                wait = target.retry.backoff_s(repeat, self._rng)
                rest_s = resting.get(index)
                if rest_s is not None:
                    if rest_s > target.retry.backoff_max_s:
                        unusable.add(index)
                        continue
                    wait = max(wait, rest_s)
            if deadline is not None and made and loop.time() + wait >= deadline:
                break  # no try (and no wait for one) starts past the deadline
            if wait:
                await self._sleep(wait)
            if policy is not None:
                policy.started(target)
            began = loop.time()
            response: UpstreamResponse | None = None  # once the upstream answered (the plain path)
            seen: list[UpstreamResponse] | None = None  # the same, for a timed try
            try:
                body, payload = build(target)
                window = target.context_window
                # the estimate is under half the body's bytes: only a large body is estimated, and only
                # while another target remains (the last one is always asked)
                if (
                    window is not None
                    and prompt is not None
                    and len(body) // 2 + 3 > window
                    and made + 1 < max_attempts
                    and len(unusable) + 1 < count
                ):
                    if prompt_tokens < 0:
                        prompt_tokens = estimate_prompt_tokens(prompt)
                    if prompt_tokens > window:
                        raise _too_long(target, prompt_tokens, window)
                request = UpstreamRequest(
                    path=path,
                    body=body,
                    payload=payload,
                    stream=stream,
                    request_id=call.request_id,
                    timeouts=target.timeouts if target.timeouts.transport else None,
                )
                timeouts = target.timeouts
                if deadline is None and timeouts.first_byte_s is None and (stream or timeouts.total_s is None):
                    # no timer (the usual case), inline: the hot path
                    response = await target.provider.send(request)
                    if stream and is_event_stream(response):
                        chunks = response.iter_chunks()
                        try:
                            head: bytes = await anext(chunks)
                            rest: AsyncIterator[bytes] | None = chunks
                        except StopAsyncIteration:
                            head, rest = b"", None
                        answer = Answer(target, response, head, rest, began, loop.time() - began)
                    else:
                        ttfb = loop.time() - began
                        head, rest = await read_up_to(response, self._limits.max_buffered_response_bytes)
                        answer = Answer(target, response, head, rest, began, ttfb)
                else:
                    seen = []
                    answer = await self._timed(target, request, stream, loop, began, deadline, seen)
            except ValidationError as error:
                # this target's format cannot carry the request: no network call was made
                unusable.add(index)
                skip_error = skip_error or error
                self._metrics.upstream_errors.inc((target.provider.name, "skipped"))
                failed.append(AttemptRecord(target.provider.name, target.model, None, "skipped"))
                if policy is not None:
                    policy.finished(Attempt(target, "skipped", None, None, loop.time() - began))
                continue
            except (_Failed, UpstreamError) as error:
                if response is not None:
                    response.close()
                made += 1
                failure = error if isinstance(error, _Failed) else _Failed.of(error)
                last_error = (target, failure, len(failed))
                self._metrics.upstream_errors.inc((target.provider.name, failure.cause))
                failed.append(AttemptRecord(target.provider.name, target.model, None, failure.cause))
                if policy is not None:
                    policy.finished(Attempt(target, failure.cause, None, None, loop.time() - began))
                continue
            except BaseException:
                # not the upstream's failure (a translator's bug, the server stopping): no other target is tried
                if policy is not None:
                    policy.finished(Attempt(target, "skipped", None, None, loop.time() - began))
                if response is not None:
                    response.close()
                if response is not None or seen:  # the upstream answered: the call happened
                    call.attempts = tuple(failed)
                    self.record(call, route, target, FAILED, stream, None, started_at=started_at)
                raise
            made += 1
            status = answer.response.status
            if status not in target.retry.statuses:
                if held is not None:
                    self._drop(held)
                if failed:
                    call.attempts = tuple(failed)
                return answer
            # a retryable status: held (served if nothing better comes), the try reported as failed
            after = _retry_after(answer.response, self._clock.now())
            if after is not None:
                resting[index] = after
            answer.cause, answer.reported = "status", True
            if policy is not None:
                policy.finished(Attempt(target, "status", status, answer.ttfb_s, loop.time() - began, after))
            if held is not None:
                self._drop(held)
            held, held_at = answer, len(failed)
            failed.append(AttemptRecord(target.provider.name, target.model, status, "status"))
        if held is not None:  # served: its try is the record, the others are attempts
            call.attempts = (*failed[:held_at], *failed[held_at + 1 :])
            return held
        if last_error is None:
            assert skip_error is not None
            raise skip_error  # no target could take the request: the first one's reason, nothing recorded
        failed_target, failure, position = last_error
        # the gateway's own answer stands for the last failed try: that try is the record, not an attempt
        call.attempts = (*failed[:position], *failed[position + 1 :])
        timeout = failure.cause == "timeout"
        self.record(call, route, failed_target, 504 if timeout else 502, stream, None, started_at=started_at)
        message = f"The upstream provider could not be reached: {failure}"
        if timeout:
            raise UpstreamTimeoutError(message, code="upstream_unavailable")
        raise UpstreamFailedError(message, code="upstream_unavailable")

    def _drop(self, answer: Answer) -> None:
        """A held answer that will not be served (a later try did better): counted as a failed try."""
        self._metrics.upstream_errors.inc((answer.target.provider.name, str(answer.response.status)))
        if answer.rest is not None:
            answer.response.close()

    async def _timed(
        self,
        target: Target,
        request: UpstreamRequest,
        stream: bool,
        loop: asyncio.AbstractEventLoop,
        began: float,
        deadline: float | None,
        seen: list[UpstreamResponse],
    ) -> Answer:
        """A try under its first-byte / total timers, cut at the deadline (the TimeoutError becomes _Failed)."""
        timeouts = target.timeouts
        first_at = _earliest(
            None if timeouts.first_byte_s is None else began + timeouts.first_byte_s,
            None if stream or timeouts.total_s is None else began + timeouts.total_s,
            deadline,
        )
        then_at = (
            None if stream else _earliest(None if timeouts.total_s is None else began + timeouts.total_s, deadline)
        )
        try:
            async with asyncio.timeout_at(first_at) as timer:
                return await self._answer(target, request, stream, loop, began, timer, then_at, seen)
        except TimeoutError:
            raise _Failed("timeout", f"no answer within {loop.time() - began:.3g} s") from None

    async def _answer(
        self,
        target: Target,
        request: UpstreamRequest,
        stream: bool,
        loop: asyncio.AbstractEventLoop,
        began: float,
        timer: asyncio.Timeout | None,
        then_at: float | None,
        seen: list[UpstreamResponse],
    ) -> Answer:
        response = await target.provider.send(request)
        seen.append(response)
        try:
            if stream and is_event_stream(response):
                chunks = response.iter_chunks()
                try:
                    head = await anext(chunks)
                except StopAsyncIteration:
                    return Answer(target, response, b"", None, began, loop.time() - began)
                return Answer(target, response, head, chunks, began, loop.time() - began)
            ttfb = loop.time() - began
            if timer is not None:
                timer.reschedule(then_at)  # the head is here: only the total (or the deadline) still applies
            head, rest = await read_up_to(response, self._limits.max_buffered_response_bytes)
            return Answer(target, response, head, rest, began, ttfb)
        except BaseException:
            response.close()
            raise


def _too_long(target: Target, tokens: int, window: int) -> ValidationError:
    return ValidationError(
        f"The prompt (about {tokens} tokens by estimate) does not fit the context window of {target.model} "
        f"({window} tokens).",
        field="messages",
        code="context_length_exceeded",
    )


def _earliest(*times: float | None) -> float | None:
    found = [t for t in times if t is not None]
    return min(found) if found else None


def _retry_after(response: UpstreamResponse, now: datetime) -> float | None:
    for name, value in response.relayed_headers:
        if name == b"retry-after":
            return retry_after_s(value.decode("latin-1"), now)
        if name == b"retry-after-ms":
            seconds = retry_after_s(value.decode("latin-1"), now)
            return None if seconds is None else seconds / 1000
    return None
