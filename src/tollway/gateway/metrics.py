"""Every metric the process exposes on /metrics (the primitives are tollway.metrics), as a prometheus_client
collector: prometheus_client writes the exposition, with its process, platform and garbage collector collectors.
Under `tollway serve --workers N` the same families are flushed to prometheus_client's multiprocess files
(gateway/multiprocess_metrics.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.metrics_core import Metric

from tollway.metrics import Counter, CounterReading, Gauge, GaugeMode, Histogram


class GatewayMetrics:
    """Every metric the process exposes on /metrics (a prometheus_client collector)."""

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
        self._readings: list[Gauge | CounterReading] = []
        self._sources: list[Callable[[], Iterable[Metric]]] = []
        # this process's families: Tollway's own and prometheus_client's process_* and python_* collectors
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        # serve --workers N: the exposition of every worker (tollway.gateway.multiprocess_metrics)
        self.shared_scrape: Callable[[], bytes] | None = None

    def exposition(self) -> bytes:
        """What /metrics answers (Prometheus text format 0.0.4): this process's metrics, or every worker's."""
        return self.shared_scrape() if self.shared_scrape is not None else generate_latest(self.registry)

    def add_gauge(self, name: str, help_text: str, read: Callable[[], float], *, mode: GaugeMode) -> None:
        """A value that goes up and down (a backlog, an age, 0/1 health), read at each scrape; `mode`: how the
        workers' values combine under `serve --workers N` (livesum: a total, livemax: the worst age, livemin:
        a health that is 0 when any worker's is)."""
        self._readings.append(Gauge(name, help_text, read, mode))

    def add_counter(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A count since process start kept by another component (named `..._total`), read at each scrape."""
        self._readings.append(CounterReading(name, help_text, read))

    def add_source(self, collect: Callable[[], Iterable[Metric]]) -> None:
        """More metric families, collected at each scrape (e.g. the per-target routing metrics)."""
        self._sources.append(collect)

    def collect(self) -> Iterator[Metric]:
        for metric in (
            self.requests,
            self.latency,
            self.tokens,
            self.upstream_errors,
            self.usage_estimated,
            self.upstream_auth_failures,
            self.auth_failures,
        ):
            yield metric.family()
        for reading in self._readings:
            yield reading.family()
        for source in self._sources:
            yield from source()
