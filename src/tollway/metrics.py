"""Metric primitives: counters and histograms kept in process, gauges and counts read at a scrape, each read as
a prometheus_client metric family when scraped.

Counters and histograms are a dict per metric keyed by the label values (one dict update per count: about
1 µs for a request's seven updates, against 8 µs with prometheus_client's own metric objects and 14 µs in its
multiprocess mode; docs/benchmarks.md, docs/decisions.md).

Neutral: imported by the gateway, the management API's edge (tollway.auth_failures) and the composition root alike;
the process's registry of metrics is tollway.gateway.metrics.GatewayMetrics."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Literal

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

_bound_text: Callable[[float], str] = floatToGoString  # as prometheus_client writes `le` (untyped there)

LabelValues = tuple[str, ...]
# How a gauge is shown when several workers share one /metrics (prometheus_client's multiprocess modes; the
# live* modes leave out workers that exited)
GaugeMode = Literal["livesum", "livemax", "livemin", "liveall", "sum", "max", "min"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ModeGauge(GaugeMetricFamily):
    """A gauge family that says how the workers' values combine under `serve --workers N`."""

    def __init__(self, name: str, documentation: str, mode: GaugeMode, labels: Sequence[str] | None = None) -> None:
        super().__init__(name, documentation, labels=labels)
        self.multiprocess_mode: GaugeMode = mode


class Counter:
    """A count per label set, in process."""

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, labels
        self._values: dict[LabelValues, float] = {}

    def inc(self, labels: LabelValues = (), amount: float = 1) -> None:
        self._values[labels] = self._values.get(labels, 0) + amount

    def value(self, labels: LabelValues = ()) -> float:
        return self._values.get(labels, 0)

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.help, labels=self.label_names)
        for labels, value in sorted(self._values.items()):
            family.add_metric(labels, value)
        return family


class Histogram:
    """Observations per label set, in process: a count per bucket (not cumulative) and the sum."""

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: tuple[str, ...] = (),
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
    ) -> None:
        self.name, self.help, self.label_names, self.buckets = name, help_text, labels, buckets
        self._bounds = [_bound_text(bound) for bound in buckets] + ["+Inf"]
        self._series: dict[LabelValues, list[float]] = {}  # bucket counts..., +Inf count, sum

    def observe(self, value: float, labels: LabelValues = ()) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0.0] * (len(self.buckets) + 2)
        series[bisect_left(self.buckets, value)] += 1
        series[-1] += value

    def count(self, labels: LabelValues = ()) -> float:
        series = self._series.get(labels)
        return sum(series[:-1]) if series else 0

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.help, labels=self.label_names)
        for labels, series in sorted((labels, list(series)) for labels, series in self._series.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip(self._bounds, series, strict=False):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(labels, buckets, series[-1])
        return family


class Gauge:
    """A value read when metrics are scraped."""

    def __init__(self, name: str, help_text: str, read: Callable[[], float], mode: GaugeMode) -> None:
        if name.endswith("_total"):
            raise ValueError(f"a gauge's name does not end with _total: {name}")
        self.name, self.help, self._read, self.mode = name, help_text, read, mode

    def family(self) -> Metric:
        family = ModeGauge(self.name, self.help, self.mode)
        family.add_metric((), float(self._read()))
        return family


class CounterReading:
    """A monotonic count kept elsewhere (since process start), read when metrics are scraped: typed `counter`,
    so Prometheus' rate() and increase() treat a restart as a reset."""

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"a counter's name ends with _total: {name}")
        self.name, self.help, self._read = name, help_text, read

    def family(self) -> Metric:
        return CounterMetricFamily(self.name, self.help, value=float(self._read()))


class LabelledGauge:
    """Gauge values per label set, read when metrics are scraped."""

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: tuple[str, ...],
        read: Callable[[], list[tuple[LabelValues, float]]],
        mode: GaugeMode,
    ) -> None:
        self.name, self.help, self.label_names, self._read, self.mode = name, help_text, labels, read, mode

    def family(self) -> Metric:
        family = ModeGauge(self.name, self.help, self.mode, labels=self.label_names)
        for labels, value in sorted(self._read()):
            family.add_metric(labels, float(value))
        return family
