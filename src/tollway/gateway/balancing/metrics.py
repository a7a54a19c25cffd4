"""Per-target figures on /metrics: tries, failures by cause, breaker state, in flight, latency, time to first byte."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.metrics_core import Metric

from tollway.gateway.balancing.breaker import CLOSED
from tollway.gateway.balancing.state import TargetState
from tollway.metrics import Counter, Histogram, LabelledGauge, LabelValues

LABELS = ("provider", "model")


class TargetMetrics:
    def __init__(self, states: Callable[[], Iterable[TargetState]], now: Callable[[], float]) -> None:
        self._states = states
        self._now = now
        self.attempts = Counter("tollway_target_attempts_total", "Tries of each upstream target.", LABELS)
        self.failures = Counter(
            "tollway_target_failures_total",
            "Failed tries of each upstream target by cause: status (a retryable status), timeout, unreachable.",
            (*LABELS, "cause"),
        )
        self.ttfb = Histogram(
            "tollway_target_ttfb_seconds", "Time to the upstream target's first byte (first token of a stream).", LABELS
        )
        self.duration = Histogram("tollway_target_duration_seconds", "Duration of each try of a target.", LABELS)
        self.breaker = LabelledGauge(
            "tollway_target_breaker_state",
            "Circuit breaker of each target: 0 closed, 1 half-open, 2 open.",
            LABELS,
            lambda: [(s.key, s.breaker.state if s.breaker else CLOSED) for s in self._states()],
            mode="livemax",  # every worker keeps its own breaker unless Redis shares them: the most open one
        )
        self.in_flight = LabelledGauge(
            "tollway_target_in_flight", "Tries of each target in progress.", LABELS, self._in_flight, mode="livesum"
        )
        self.usable = LabelledGauge(
            "tollway_target_usable",
            "1 when the target may take a request now (breaker not open, not cooling down, within its budget).",
            LABELS,
            self._usable,
            mode="livemin",  # 0 when any worker may not send to it now
        )

    def _in_flight(self) -> list[tuple[LabelValues, float]]:
        return [(s.key, float(s.in_flight)) for s in self._states()]

    def _usable(self) -> list[tuple[LabelValues, float]]:
        now = self._now()
        return [(s.key, 1.0 if s.usable(now) else 0.0) for s in self._states()]

    def collect(self) -> Iterator[Metric]:
        for metric in (
            self.attempts,
            self.failures,
            self.ttfb,
            self.duration,
            self.breaker,
            self.in_flight,
            self.usable,
        ):
            yield metric.family()
