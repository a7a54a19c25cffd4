"""Per-target figures on /metrics: tries, failures by cause, breaker state, in flight, latency, time to first byte."""

from __future__ import annotations

from collections.abc import Callable, Iterable

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
        )
        self.in_flight = LabelledGauge(
            "tollway_target_in_flight", "Tries of each target in progress.", LABELS, self._in_flight
        )
        self.usable = LabelledGauge(
            "tollway_target_usable",
            "1 when the target may take a request now (breaker not open, not cooling down, within its budget).",
            LABELS,
            self._usable,
        )

    def _in_flight(self) -> list[tuple[LabelValues, float]]:
        return [(s.key, float(s.in_flight)) for s in self._states()]

    def _usable(self) -> list[tuple[LabelValues, float]]:
        now = self._now()
        return [(s.key, 1.0 if s.usable(now) else 0.0) for s in self._states()]

    def render(self) -> list[str]:
        lines: list[str] = []
        for counter in (self.attempts, self.failures):
            lines.extend(counter.render())
        for histogram in (self.ttfb, self.duration):
            lines.extend(histogram.render())
        for gauge in (self.breaker, self.in_flight, self.usable):
            lines.extend(gauge.render())
        return lines
