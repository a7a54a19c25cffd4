"""Metric primitives: counters, gauges and histograms kept in memory, rendered in Prometheus' text exposition format.

Neutral: imported by the gateway, the management API's edge (tollway.auth_failures) and the composition root alike;
the process's registry of metrics is tollway.gateway.metrics.GatewayMetrics."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

LabelValues = tuple[str, ...]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, labels
        self._values: dict[LabelValues, float] = {}

    def inc(self, labels: LabelValues = (), amount: float = 1) -> None:
        self._values[labels] = self._values.get(labels, 0) + amount

    def value(self, labels: LabelValues = ()) -> float:
        return self._values.get(labels, 0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for labels, value in sorted(self._values.items()):
            lines.append(f"{self.name}{_labels(self.label_names, labels)} {_number(value)}")
        return lines


class Gauge:
    """A value read when metrics are scraped."""

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.name, self.help, self._read = name, help_text, read

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge", f"{self.name} {self._read()}"]


class CounterReading:
    """A monotonic count kept elsewhere (since process start), read when metrics are scraped: typed `counter`,
    so Prometheus' rate() and increase() treat a restart as a reset."""

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"a counter's name ends with _total: {name}")
        self.name, self.help, self._read = name, help_text, read

    def render(self) -> list[str]:
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} counter",
            f"{self.name} {_number(self._read())}",
        ]


class LabelledGauge:
    """Gauge values per label set, read when metrics are scraped."""

    def __init__(
        self, name: str, help_text: str, labels: tuple[str, ...], read: Callable[[], list[tuple[LabelValues, float]]]
    ) -> None:
        self.name, self.help, self.label_names, self._read = name, help_text, labels, read

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        for labels, value in sorted(self._read()):
            lines.append(f"{self.name}{_labels(self.label_names, labels)} {_number(value)}")
        return lines


class Histogram:
    def __init__(
        self,
        name: str,
        help_text: str,
        labels: tuple[str, ...] = (),
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
    ) -> None:
        self.name, self.help, self.label_names, self.buckets = name, help_text, labels, buckets
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

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for labels, series in sorted(self._series.items()):
            cumulative = 0.0
            for bound, count in zip(self.buckets, series, strict=False):
                cumulative += count
                le = f'le="{_number(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, labels, le)} {_number(cumulative)}")
            cumulative += series[len(self.buckets)]
            inf = 'le="+Inf"'
            lines.append(f"{self.name}_bucket{_labels(self.label_names, labels, inf)} {_number(cumulative)}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, labels)} {series[-1]}")
            lines.append(f"{self.name}_count{_labels(self.label_names, labels)} {_number(cumulative)}")
        return lines


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
