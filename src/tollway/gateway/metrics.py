"""Every metric the process exposes on /metrics (the primitives are tollway.metrics)."""

from __future__ import annotations

from collections.abc import Callable

from tollway.metrics import Counter, CounterReading, Gauge, Histogram


class GatewayMetrics:
    """Every metric the process exposes on /metrics."""

    def __init__(self) -> None:
        self.requests = Counter(
            "tollway_requests_total", "Gateway requests by route, model and status.", ("route", "model", "status")
        )
        self.latency = Histogram(
            "tollway_request_duration_seconds", "Gateway request duration, to the last byte.", ("route", "model")
        )
        self.tokens = Counter(
            "tollway_tokens_total", "Metered tokens by model, provider and token type.", ("model", "provider", "type")
        )
        self.upstream_errors = Counter(
            "tollway_upstream_errors_total",
            "Upstream failures: HTTP error statuses, unreachable, timeouts, broken streams.",
            ("provider", "reason"),
        )
        self.usage_estimated = Counter(
            "tollway_usage_estimated_total",
            "Requests whose usage had to be estimated (upstream reported none).",
            ("provider",),
        )
        self.upstream_auth_failures = Counter(
            "tollway_upstream_auth_failures_total",
            "Upstream answers refusing Tollway's own provider credentials (401/403), answered 502.",
            ("provider",),
        )
        self.auth_failures = Counter(
            "tollway_auth_failures_total",
            "Failed authentications (missing or wrong consumer key, admin token) by surface: gateway, admin.",
            ("surface",),
        )
        self._gauges: list[Gauge | CounterReading] = []
        self._sources: list[Callable[[], list[str]]] = []
        # serve --workers N: the exposition summed over the workers (tollway.gateway.shared_metrics)
        self.shared_scrape: Callable[[], bytes] | None = None

    def exposition(self) -> bytes:
        """What /metrics answers: this process's metrics, or every worker's when they are shared."""
        return self.shared_scrape() if self.shared_scrape is not None else self.render()

    def add_gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A value that goes up and down (a backlog, an age, 0/1 health), read at each scrape."""
        self._gauges.append(Gauge(name, help_text, read))

    def add_counter(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A count since process start kept by another component (named `..._total`), read at each scrape."""
        self._gauges.append(CounterReading(name, help_text, read))

    def add_source(self, render: Callable[[], list[str]]) -> None:
        """More exposition lines, rendered at each scrape (e.g. the per-target routing metrics)."""
        self._sources.append(render)

    def render(self) -> bytes:
        lines: list[str] = []
        for metric in (
            self.requests,
            self.latency,
            self.tokens,
            self.upstream_errors,
            self.usage_estimated,
            self.upstream_auth_failures,
            self.auth_failures,
        ):
            lines.extend(metric.render())
        for gauge in self._gauges:
            lines.extend(gauge.render())
        for source in self._sources:
            lines.extend(source())
        return ("\n".join(lines) + "\n").encode()
