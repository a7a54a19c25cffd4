"""The flow's extension points: admission (spend control fills it) and the target policy (routing fills it).

Defaults change nothing: every call is admitted, and the route's targets are tried in their configured
order. The flow skips a hook left at its default (no call on the hot path); `AdmitAll` and `InOrder`
spell the defaults out for code that composes hooks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tollway.gateway.auth import Consumer
from tollway.gateway.routing import Route, Target
from tollway.metering.llm import LlmCall


@dataclass(frozen=True, slots=True)
class Admit:
    """What admission sees of a call: who, which model (the name clients use), on which endpoint, streaming or not."""

    request_id: str
    consumer: Consumer
    model: str
    endpoint: str
    stream: bool
    prompt: Mapping[str, Any] | None = None  # what a prompt-token estimate reads (cost routing prices the call)
    route: Route | None = None  # the resolved route (spend control prices the call on its targets)
    payload: Mapping[str, Any] | None = None  # the request as parsed (max_tokens and the like)


class Reservation(Protocol):
    def settle(self, record: LlmCall) -> None:
        """The call's usage record, once (never for a call refused before any upstream call)."""
        ...

    def release(self) -> None:
        """Called exactly once for every admitted call, after settle if there was one, whatever happened."""
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
