"""Routing state counted across every gateway process: per-target budgets, breaker failure counts, latency averages.

Nothing here is on the request path: requests read and update their own process's target states, as without
sharing. Every tenth of a second a background task (adapters/redis/routing_sync.py) takes an `Exchange` from the
policy — what this process counted since the last one — sends it to the shared store in one round trip, and
settles the answer, the fleet's figures, into the target states:

- a budget's window counts: the other processes' requests and tokens in the same minute (`Budget.others_*`), so
  N processes together take a target's `requests_per_minute` and `tokens_per_minute`, not N times as many;
- a breaker's consecutive failures: the fleet's count (`Breaker.tally`), so N processes open a breaker after
  `breaker.failures` failures in all; a success anywhere restarts it (the fleet's count is set, not added to,
  by a process whose count restarted), as does a change of the breaker's state;
- the moving averages of a target's latency (`lowest_latency`): one average per target for the fleet, each
  process's samples since the last exchange folded in as a batch (n samples of mean m move an average `a` to
  a + (1 - (1 - alpha)^n)(m - a), as n samples one after the other would, near enough).

Between two exchanges a process counts on its own, so the fleet may overshoot a budget (or a breaker's count) by
what the processes take in one interval. The store unreachable: `forget` drops what the others counted, and each
process keeps its own state (as without sharing) until it answers again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from tollway.gateway.balancing.state import TargetState

EXCHANGE_S = 0.1  # how often the counts are exchanged


@dataclass(frozen=True, slots=True)
class BudgetCount:
    """A budget's counts in `window` (minute number) that the others have not been told of."""

    label: str
    window: int
    requests: int
    tokens: int


@dataclass(frozen=True, slots=True)
class FailureCount:
    """A breaker's failures the others have not been told of; `restart`: the count restarted here first."""

    label: str
    restart: bool
    count: int


@dataclass(frozen=True, slots=True)
class LatencySamples:
    """Latency samples since the last exchange: how many and their mean, for time to first byte and in total."""

    label: str
    alpha: float
    ttfb_n: int
    ttfb_mean: float
    total_n: int
    total_mean: float


class Exchange:
    """One exchange: what this process sends (budgets, failures, latencies) and how the answer is settled."""

    __slots__ = ("_budgets", "_epochs", "_latencies", "_now", "budgets", "failures", "latencies")

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.budgets: list[BudgetCount] = []
        self.failures: list[FailureCount] = []
        self.latencies: list[LatencySamples] = []
        self._budgets: list[TargetState] = []
        self._epochs: list[tuple[TargetState, int]] = []
        self._latencies: list[tuple[TargetState, float, float]] = []  # the sums taken

    def __bool__(self) -> bool:
        return bool(self.budgets or self.failures or self.latencies)

    def add_budget(self, state: TargetState, now: float) -> None:
        budget = state.budget
        assert budget is not None
        budget.roll(now)
        requests, tokens = budget.requests - budget.sent_requests, budget.tokens - budget.sent_tokens
        self.budgets.append(BudgetCount(state.label, int(budget.window), requests, tokens))
        self._budgets.append(state)

    def add_breaker(self, state: TargetState) -> None:
        breaker = state.breaker
        assert breaker is not None
        self.failures.append(FailureCount(state.label, breaker.fresh, breaker.unsent))
        self._epochs.append((state, breaker.epoch))

    def add_latency(self, state: TargetState) -> None:
        ttfb_n, ttfb_sum, total_n, total_sum = state.pending
        ttfb_mean = ttfb_sum / ttfb_n if ttfb_n else 0.0
        total_mean = total_sum / total_n if total_n else 0.0
        samples = LatencySamples(state.label, state.alpha, int(ttfb_n), ttfb_mean, int(total_n), total_mean)
        self.latencies.append(samples)
        self._latencies.append((state, ttfb_sum, total_sum))

    def settle(
        self,
        budgets: Sequence[tuple[int, int]],
        failures: Sequence[int],
        latencies: Sequence[tuple[float | None, float | None]],
    ) -> None:
        """The fleet's figures, in the order sent: (requests, tokens) per budget in its window, the consecutive
        failures per breaker, the (time to first byte, total) averages per target (None: no sample yet)."""
        for sent, state, (requests, tokens) in zip(self.budgets, self._budgets, budgets, strict=True):
            budget = state.budget
            if budget is None or budget.window != sent.window:
                continue  # reconfigured, or the minute turned meanwhile: the new window starts from zero
            budget.sent_requests += sent.requests
            budget.sent_tokens += sent.tokens
            budget.others_requests = max(0, requests - budget.sent_requests)
            budget.others_tokens = max(0, tokens - budget.sent_tokens)
        now = self._now()
        for told, (state, epoch), fleet in zip(self.failures, self._epochs, failures, strict=True):
            if state.breaker is not None:
                state.breaker.tally(epoch, told.count, fleet, now)
        for sent_samples, (state, ttfb_sum, total_sum), (ttfb, total) in zip(
            self.latencies, self._latencies, latencies, strict=True
        ):
            pending = state.pending
            pending[0] -= sent_samples.ttfb_n
            pending[1] -= ttfb_sum
            pending[2] -= sent_samples.total_n
            pending[3] -= total_sum
            alpha = state.alpha
            if ttfb is not None:  # the fleet's average, with the samples taken here since it was sent
                state.ewma_ttfb = _fold(ttfb, alpha, pending[0], pending[1])
            if total is not None:
                state.ewma_total = _fold(total, alpha, pending[2], pending[3])


def take(states: Iterable[TargetState], latency: Iterable[TargetState], now: Callable[[], float]) -> Exchange:
    """What this process counted since the last exchange: every budget and breaker of `states` (to learn the
    fleet's figures even when it counted nothing), and the latency samples of the targets in `latency`."""
    exchange = Exchange(now)
    at = now()
    for state in states:
        if state.budget is not None:
            exchange.add_budget(state, at)
        if state.breaker is not None:
            exchange.add_breaker(state)
    for state in latency:
        exchange.add_latency(state)
    return exchange


def forget(states: Iterable[TargetState]) -> None:
    """The shared store is unreachable: each process counts its budgets alone again (its breakers and latency
    averages go on from what they hold)."""
    for state in states:
        if state.budget is not None:
            state.budget.others_requests = state.budget.others_tokens = 0


def _fold(average: float, alpha: float, samples: float, total: float) -> float:
    if not samples:
        return average
    return average + (1.0 - math.pow(1.0 - alpha, samples)) * (total / samples - average)
