"""What the gateway knows of each upstream target (provider, upstream model), kept across reloads.

One TargetState per upstream target, shared by every model that lists it: its breaker, its budget,
its requests in flight, its cool-down after a 429 with Retry-After, and moving averages of its latency.
The samples since the last exchange with the other processes (shared routing state, fleet.py) are summed in
`pending`: [ttfb samples, their sum, total samples, their sum].
"""

from __future__ import annotations

from collections.abc import Hashable

from tollway.gateway.balancing.breaker import CLOSED, Breaker
from tollway.gateway.balancing.budgets import Budget

TargetKey = tuple[str, str]  # (provider name, upstream model)


class TargetState:
    __slots__ = (
        "alpha",
        "breaker",
        "budget",
        "cool_until",
        "ewma_total",
        "ewma_ttfb",
        "fingerprint",
        "in_flight",
        "key",
        "pending",
    )

    def __init__(
        self,
        key: TargetKey,
        fingerprint: Hashable,
        *,
        breaker: Breaker | None,
        budget: Budget | None,
        alpha: float,
    ) -> None:
        self.key = key
        self.fingerprint = fingerprint  # what the state was built from; a changed target starts afresh
        self.breaker = breaker
        self.budget = budget
        self.alpha = alpha
        self.in_flight = 0
        self.cool_until = 0.0
        self.ewma_ttfb: float | None = None
        self.ewma_total: float | None = None
        self.pending: list[float] = [0.0, 0.0, 0.0, 0.0]

    @property
    def label(self) -> str:
        return f"{self.key[0]}/{self.key[1]}"

    def usable(self, now: float) -> bool:
        """Whether a request may try this target now (a half-open breaker counts while its probe is free)."""
        if self.cool_until:
            if self.cool_until > now:
                return False
            self.cool_until = 0.0  # over: the quiet path (no clock) applies again
        if self.budget is not None and not self.budget.allows(now):
            return False
        return self.breaker is None or self.breaker.usable(now)

    def ready(self, now: float) -> bool:
        """Usable with a closed breaker: may be tried without claiming a half-open probe."""
        if self.breaker is not None and self.breaker.state != CLOSED:
            return False
        if self.cool_until:
            if self.cool_until > now:
                return False
            self.cool_until = 0.0
        return self.budget is None or self.budget.allows(now)

    def usable_at(self, now: float) -> float:
        """The earliest time this target may be usable again (now when it is)."""
        at = max(now, self.cool_until)
        if self.budget is not None and not self.budget.allows(now):
            at = max(at, self.budget.resets_at())
        if self.breaker is not None and self.breaker.state != CLOSED:
            at = max(at, self.breaker.reopens_at())
        return at

    def observe_latency(self, ttfb_s: float | None, total_s: float) -> None:
        alpha = self.alpha
        pending = self.pending
        if ttfb_s is not None:
            previous = self.ewma_ttfb
            self.ewma_ttfb = ttfb_s if previous is None else previous + alpha * (ttfb_s - previous)
            pending[0] += 1
            pending[1] += ttfb_s
        previous = self.ewma_total
        self.ewma_total = total_s if previous is None else previous + alpha * (total_s - previous)
        pending[2] += 1
        pending[3] += total_s
