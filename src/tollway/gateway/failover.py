"""Failover before the first byte: try a request's targets in turn until one gives an answer the client can have.

A try ends in an answer (relayed), or fails: a retryable status, a timeout, an unreachable upstream, or
a target that cannot take the request faithfully (its format cannot say what the request asks: skipped,
no network call). Nothing reaches the client until a try succeeds: a unary answer is read, a stream's
first chunk is in hand. Once a stream has started, a failure ends it as a cut stream (relay.py); no
second answer is ever spliced onto the first. Every failed try becomes a zero-token attempt of the
answer (the call's usage record carries them; they are never billed) and is reported to the target
policy. Sending returns an `Answer` or, when every try failed, a `Failed`; it records nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from random import Random

from tollway.clock import Clock
from tollway.errors import DomainError, UpstreamFailedError, UpstreamTimeoutError, ValidationError
from tollway.gateway.endpoint import LlmEndpoint, Parsed
from tollway.gateway.hooks import Attempt, TargetPolicy
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.providers.base import (
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
    is_event_stream,
    read_up_to,
)
from tollway.gateway.resilience import retry_after_s
from tollway.gateway.routing import Target
from tollway.gateway.usage import estimate_prompt_tokens
from tollway.metering.llm import AttemptRecord

Sleep = Callable[[float], Awaitable[None]]


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
    attempts: tuple[AttemptRecord, ...] = ()  # the failed tries before it, in order (zero-token, never billed)


@dataclass(frozen=True, slots=True)
class Failed:
    """Every try failed before an answer: the error the client gets and, unless no target could take the
    request at all (nothing was called), the try that stands for the call in its usage record."""

    error: DomainError
    target: Target | None = None
    status: int = 502  # 502 unreachable, 504 timed out
    attempts: tuple[AttemptRecord, ...] = ()  # the other failed tries, in order


class _Failed(Exception):
    """One try failed (timeout or unreachable) before anything was answered."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause

    @classmethod
    def of(cls, error: UpstreamError) -> _Failed:
        return cls("timeout" if error.timeout else "unreachable", str(error))


class Tries:
    """One call's tries of its targets: which target is next, and what the failed tries came to.

    `answered`: the target whose upstream answered the try in progress; when a try breaks off for a
    reason not the upstream's (a translator's bug, the server stopping), the call happened and the flow
    records it against that target, with `failed` as its attempts. (The defaults live on the class: a
    call whose first try answers sets two attributes.)"""

    made = 0  # tries that reached (or tried to reach) an upstream
    turn = 1  # turns taken (target `turn % len(targets)`, round `turn // len(targets)`): the first is send's own
    unusable: frozenset[int] | set[int] = frozenset()  # targets not to try again (skipped, resting after 429)
    resting: dict[int, float] | None = None  # Retry-After of a target's last answer
    held: Answer | None = None  # the last retryable-status answer: served if no try does better
    held_at = -1  # its place in `failed`
    last_error: tuple[Target, _Failed, int] | None = None  # and its place in `failed`
    skip_error: ValidationError | None = None
    prompt_tokens = -1  # estimated once, when a context window makes it matter
    answered: Target | None = None
    failed: tuple[AttemptRecord, ...] = ()  # in the order they happened

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = targets
        retry = targets[0].retry
        self.deadline = None if retry.deadline_s is None else asyncio.get_running_loop().time() + retry.deadline_s

    @property
    def max_attempts(self) -> int:
        return self.targets[0].retry.max_attempts or len(self.targets)

    def fail(self, attempt: AttemptRecord) -> None:
        self.failed = (*self.failed, attempt)

    def rule_out(self, index: int) -> None:
        """This request will not try `targets[index]` again."""
        self.unusable = {*self.unusable, index}

    def rest(self, index: int, seconds: float) -> None:
        """`targets[index]` asked to be left alone for `seconds` (Retry-After)."""
        if self.resting is None:
            self.resting = {}
        self.resting[index] = seconds

    def next(self, now: Callable[[], float], rng: Random) -> tuple[int, float] | None:
        """The next target to try (its index) and the backoff to wait first; None when no try is left.
        (The first turn, the first target at once, is `send`'s own.)"""
        targets = self.targets
        count = len(targets)
        while self.made < self.max_attempts and len(self.unusable) < count:
            index, repeat = self.turn % count, self.turn // count
            self.turn += 1
            if index in self.unusable:
                continue
            wait = 0.0
            if repeat:  # this target was tried already: back off first
                retry = targets[index].retry
                wait = retry.backoff_s(repeat, rng)
                rest_s = None if self.resting is None else self.resting.get(index)
                if rest_s is not None:
                    if rest_s > retry.backoff_max_s:
                        self.rule_out(index)
                        continue
                    wait = max(wait, rest_s)
            if self.deadline is not None and self.made and now() + wait >= self.deadline:
                return None  # no try (and no wait for one) starts past the deadline
            return index, wait
        return None

    def last_chance(self) -> bool:
        """No other try would follow this one (the last target is always asked, whatever its window)."""
        return self.made + 1 >= self.max_attempts or len(self.unusable) + 1 >= len(self.targets)

    def given_up(self) -> Answer | Failed:
        """Every try is over: the held answer (its try is the record), or why nothing could be had."""
        failed = self.failed
        if self.held is not None:
            self.held.attempts = (*failed[: self.held_at], *failed[self.held_at + 1 :])
            return self.held
        if self.last_error is None:
            assert self.skip_error is not None
            return Failed(self.skip_error)  # no target could take the request: the first one's reason
        target, failure, position = self.last_error
        # the gateway's own answer stands for the last failed try: that try is the record, not an attempt
        attempts = (*failed[:position], *failed[position + 1 :])
        message = f"The upstream provider could not be reached: {failure}"
        if failure.cause == "timeout":
            return Failed(UpstreamTimeoutError(message, code="upstream_unavailable"), target, 504, attempts)
        return Failed(UpstreamFailedError(message, code="upstream_unavailable"), target, 502, attempts)


class Failover:
    """Finds a call's answer: tries its targets in turn, reporting each try to the target policy."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        clock: Clock,
        max_buffered: int,
        policy: TargetPolicy | None,
        rng: Random,
        sleep: Sleep,
    ) -> None:
        """`max_buffered`: a unary answer is read whole up to this size (GatewayLimits)."""
        self._metrics = metrics
        self._clock = clock
        self._max_buffered = max_buffered
        self._policy = policy
        self._rng = rng  # jitter of the backoff between tries of one target
        self._sleep = sleep

    async def send(
        self, tries: Tries, request_id: str, endpoint: LlmEndpoint, parsed: Parsed, body: bytes
    ) -> Answer | Failed:
        """The first answer a client can have, trying the targets in order (then round again while
        `max_attempts` allows, after a backoff), or what every try failed with. `endpoint` builds each
        target's request from the client's (`parsed`, as read: `body`)."""
        stream = parsed.stream
        loop = asyncio.get_running_loop()
        policy = self._policy
        index, wait = 0, 0.0  # the first try: the first target, at once
        while True:
            if wait:
                await self._sleep(wait)
            target = tries.targets[index]
            if policy is not None:
                policy.started(target)
            began = loop.time()
            try:
                request = self._request(tries, target, request_id, endpoint, parsed, body)
                timeouts = target.timeouts
                if tries.deadline is None and timeouts.first_byte_s is None and (stream or timeouts.total_s is None):
                    answer = await self._answer(tries, target, request, stream, loop, began)  # no timer: the hot path
                else:
                    answer = await self._timed(tries, target, request, stream, loop, began)
            except ValidationError as error:
                # this target's format cannot carry the request: no network call was made
                tries.rule_out(index)
                tries.skip_error = tries.skip_error or error
                self._failed(tries, target, "skipped", began, loop)
            except (_Failed, UpstreamError) as error:
                tries.made += 1
                failure = error if isinstance(error, _Failed) else _Failed.of(error)
                tries.last_error = (target, failure, len(tries.failed))
                self._failed(tries, target, failure.cause, began, loop)
            except BaseException:
                # not the upstream's failure (a translator's bug, the server stopping): no other target is
                # tried; `tries.answered` tells the flow whether the call happened
                if policy is not None:
                    policy.finished(Attempt(target, "skipped", None, None, loop.time() - began))
                raise
            else:
                tries.made += 1
                if answer.response.status not in target.retry.statuses:
                    if tries.held is not None:
                        self._drop(tries.held)
                    answer.attempts = tries.failed
                    return answer
                self._hold(tries, index, answer, began, loop)
            tries.answered = None
            turn = tries.next(loop.time, self._rng)
            if turn is None:
                return tries.given_up()
            index, wait = turn

    def _request(
        self, tries: Tries, target: Target, request_id: str, endpoint: LlmEndpoint, parsed: Parsed, body: bytes
    ) -> UpstreamRequest:
        """The request for `target`; ValidationError where it cannot take it (nothing is sent then): its
        format cannot say what the request asks, or the prompt exceeds its known context window (passed
        over while another target remains: the last one is always asked)."""
        outgoing, payload = endpoint.build(parsed, target, body)
        window = target.context_window
        # the estimate is under half the body's bytes: only a large body is estimated
        if window is not None and len(outgoing) // 2 + 3 > window and not tries.last_chance():
            if tries.prompt_tokens < 0:
                tries.prompt_tokens = estimate_prompt_tokens(parsed.prompt)
            if tries.prompt_tokens > window:
                raise _too_long(target, tries.prompt_tokens, window)
        return UpstreamRequest(
            path=endpoint.upstream_path,
            body=outgoing,
            payload=payload,
            stream=parsed.stream,
            request_id=request_id,
            timeouts=target.timeouts if target.timeouts.transport else None,
        )

    async def _timed(
        self,
        tries: Tries,
        target: Target,
        request: UpstreamRequest,
        stream: bool,
        loop: asyncio.AbstractEventLoop,
        began: float,
    ) -> Answer:
        """A try under its first-byte / total timers, cut at the deadline (the TimeoutError becomes _Failed)."""
        timeouts = target.timeouts
        first_at = _earliest(
            None if timeouts.first_byte_s is None else began + timeouts.first_byte_s,
            None if stream or timeouts.total_s is None else began + timeouts.total_s,
            tries.deadline,
        )
        then_at = (
            None
            if stream
            else _earliest(None if timeouts.total_s is None else began + timeouts.total_s, tries.deadline)
        )
        try:
            async with asyncio.timeout_at(first_at) as timer:
                return await self._answer(tries, target, request, stream, loop, began, timer, then_at)
        except TimeoutError:
            raise _Failed("timeout", f"no answer within {loop.time() - began:.3g} s") from None

    async def _answer(
        self,
        tries: Tries,
        target: Target,
        request: UpstreamRequest,
        stream: bool,
        loop: asyncio.AbstractEventLoop,
        began: float,
        timer: asyncio.Timeout | None = None,
        then_at: float | None = None,
    ) -> Answer:
        """The upstream's answer: a stream's first chunk, or a unary body (up to the buffer limit); its
        response closed when reading it fails."""
        response = await target.provider.send(request)
        tries.answered = target
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
            head_bytes, rest = await read_up_to(response, self._max_buffered)
            return Answer(target, response, head_bytes, rest, began, ttfb)
        except BaseException:
            response.close()
            raise

    def _failed(self, tries: Tries, target: Target, cause: str, began: float, loop: asyncio.AbstractEventLoop) -> None:
        """A try that got no answer: counted, kept as a zero-token attempt, reported to the policy."""
        self._metrics.upstream_errors.inc((target.provider.name, cause))
        tries.fail(AttemptRecord(target.provider.name, target.model, None, cause))
        if self._policy is not None:
            self._policy.finished(Attempt(target, cause, None, None, loop.time() - began))

    def _hold(self, tries: Tries, index: int, answer: Answer, began: float, loop: asyncio.AbstractEventLoop) -> None:
        """A retryable status: held (served if nothing better comes), the try reported as failed."""
        target, status = answer.target, answer.response.status
        after = _retry_after(answer.response, self._clock.now())
        if after is not None:
            tries.rest(index, after)
        answer.cause, answer.reported = "status", True
        if self._policy is not None:
            self._policy.finished(Attempt(target, "status", status, answer.ttfb_s, loop.time() - began, after))
        if tries.held is not None:
            self._drop(tries.held)
        tries.held, tries.held_at = answer, len(tries.failed)
        tries.fail(AttemptRecord(target.provider.name, target.model, status, "status"))

    def _drop(self, answer: Answer) -> None:
        """A held answer that will not be served (a later try did better): counted as a failed try."""
        self._metrics.upstream_errors.inc((answer.target.provider.name, str(answer.response.status)))
        if answer.rest is not None:
            answer.response.close()


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
