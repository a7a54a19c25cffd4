"""The flow's extension points: admission (spend control fills it) and the target policy (routing fills it).

Defaults change nothing: every call is admitted, and the route's targets are tried in their configured
order. The flow skips a hook left at its default (no call on the hot path); `AdmitAll` and `InOrder`
spell the defaults out for code that composes hooks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from tollway.gateway.http import Message, Send
from tollway.gateway.routing import Route, Target
from tollway.identity.key_index import Identity
from tollway.metering.llm import LlmCall
from tollway.money import decimal_text
from tollway.spend.admission import Estimate


# built per call, never changed after: not frozen (a frozen __init__ costs a setattr per field)
@dataclass(slots=True, unsafe_hash=True)
class Admit:
    """What admission sees of a call: who, which model (the name clients use), on which endpoint, streaming or not."""

    request_id: str
    consumer: Identity
    model: str
    endpoint: str
    stream: bool
    prompt: Mapping[str, Any] | None = None  # what a prompt-token estimate reads (cost routing prices the call)
    route: Route | None = None  # the resolved route (spend control prices the call on its targets)
    payload: Mapping[str, Any] | None = None  # the request as parsed (max_tokens and the like)
    headers: Sequence[tuple[bytes, bytes]] = ()  # the client's request headers (x-tollway-budget, x-tollway-task)


@runtime_checkable
class Degraded(Protocol):
    """A reservation whose call a budget degraded instead of refusing it: `rewrite` holds the request fields to
    change before the call (a lower max_tokens, or a cheaper model: the flow parses and routes the request
    again), `degraded` what changed (the x-tollway-degraded header)."""

    rewrite: Mapping[str, Any] | None
    degraded: str | None


class Reservation(Protocol):
    def settle(self, record: LlmCall) -> None:
        """The call's usage record, once (never for a call refused before any upstream call)."""
        ...

    def release(self) -> None:
        """Called exactly once for every admitted call, after settle if there was one, whatever happened."""
        ...


@runtime_checkable
class Charged(Protocol):
    """A reservation that prices its call: after `settle`, `cost` (in `currency`) and what the tightest
    budget on it has left, and the rate-limit headers; the flow puts them on the response (x-tollway-cost,
    x-tollway-budget-remaining, x-ratelimit-*)."""

    cost: Decimal | None
    currency: str

    def settle(self, record: LlmCall) -> None: ...

    def release(self) -> None: ...

    def budget_remaining(self) -> tuple[str, Decimal] | None: ...

    def rate_headers(self) -> list[tuple[bytes, bytes]]:
        """The caller's rate-limit headers (x-ratelimit-* or anthropic-ratelimit-*), after this call."""
        ...

    def spend_headers(self) -> list[tuple[bytes, bytes]]:
        """All of the above as response headers, after this call (x-tollway-cost and -currency,
        x-tollway-budget-remaining and -name, the rate-limit headers, x-tollway-degraded)."""
        ...


def with_spend_headers(send: Send, charged: Charged, *, comment: bool = True) -> Send:
    """`send` adding the call's cost and budget headers to the response's start (a unary answer is settled by
    then); a stream's start leaves before its usage is known, so its cost follows as a last SSE comment.
    Every call of the default mode goes through it (x-tollway-cost): one list built, nothing else copied."""
    streaming = False

    async def sending(message: Message) -> None:
        nonlocal streaming
        kind = message["type"]
        if kind == "http.response.start":
            headers = [*message.get("headers", ())]
            for name, value in headers:
                if name == b"content-type" and b"event-stream" in value:
                    streaming = True
                    break
            headers += charged.spend_headers()
            message = {**message, "headers": headers}
        elif (
            kind == "http.response.body"
            and streaming
            and comment
            and not message.get("more_body", False)
            and charged.cost is not None
        ):
            line = f": x-tollway-cost {decimal_text(charged.cost)} {charged.currency}\n\n".encode()
            message = {**message, "body": line + message.get("body", b"")}
        await send(message)

    return sending


@runtime_checkable
class Estimates(Protocol):
    async def estimate(self, call: Admit) -> Estimate:
        """What the call would cost and whether its limits would let it through now (nothing held)."""
        ...


class Admission(Protocol):
    async def admit(self, call: Admit) -> Reservation:
        """A reservation for this call, or raise a DomainError (e.g. LimitExceededError) to refuse it."""
        ...


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one try of one target went, as the flow saw it (the target policy learns from these).

    cause: "ok" (an answer the client gets, whatever its status), "status" (a retryable status, tried
    elsewhere), "timeout", "unreachable", "skipped" (the target could not take the request faithfully).
    ttfb_s: seconds until the upstream's first byte (None when none came); total_s: until the answer was
    relayed in full or the try was given up; retry_after_s: the upstream's Retry-After, when it sent one.
    """

    target: Target
    cause: str
    status: int | None
    ttfb_s: float | None
    total_s: float
    retry_after_s: float | None = None


class TargetPolicy(Protocol):
    def targets(self, route: Route, call: Admit) -> Sequence[Target]:
        """The targets to try, in order; the flow falls through on unreachable targets and retryable statuses."""
        ...

    def started(self, target: Target) -> None:
        """A try of `target` begins (in-flight accounting); always followed by one `finished`."""
        ...

    def finished(self, attempt: Attempt) -> None:
        """A try of `attempt.target` is over: feeds breakers, latency statistics and cool-downs."""
        ...


class _NoReservation:
    def settle(self, record: LlmCall) -> None:
        return None

    def release(self) -> None:
        return None


NO_RESERVATION: Reservation = _NoReservation()


class AdmitAll:
    async def admit(self, call: Admit) -> Reservation:
        return NO_RESERVATION


class InOrder:
    """Today's fallback: the route's targets in their configured order."""

    def targets(self, route: Route, call: Admit) -> Sequence[Target]:
        return route.targets

    def started(self, target: Target) -> None:
        return None

    def finished(self, attempt: Attempt) -> None:
        return None
