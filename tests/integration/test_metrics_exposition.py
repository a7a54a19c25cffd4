"""/metrics as Prometheus reads it: counts since start are typed `counter` and named `..._total` (so rate() is
right), nothing else is named `_total`, the standard process_* and python_* series are there, the Grafana
dashboard in examples/grafana/ only queries metrics this exposition has, and `serve --workers 2` answers every
scrape with all the workers' requests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agent_app import KEY, QUICKSTART, tollway_app
from tests.support.in_process import in_process
from tests.support.net import plain_http, wait_until
from tests.support.prometheus import prometheus_value
from tests.support.tollway_process import TollwayProcess
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.multiprocess_metrics import COLLECTOR_GAUGE_MODES, MultiprocessExposition
from tollway.metrics import ModeGauge

DASHBOARD = Path(__file__).parents[2] / "examples" / "grafana" / "tollway-dashboard.json"
COUNTS_SINCE_START = (
    "tollway_events_stored_total",
    "tollway_events_duplicates_total",
    "tollway_events_conflicts_total",
    "tollway_meter_skipped_values_total",
    "tollway_rollup_events_total",
    "tollway_usage_flush_failures_total",
    "tollway_internal_errors_total",
    "tollway_usage_journal_failures_total",
    "tollway_usage_interrupted_calls_total",
)
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "le"}


def types_of(exposition: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name not in found, f"{name} declared twice"
            found[name] = kind
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, grouping labels and ranges left out)."""
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", expr)
    bare = re.sub(r"\b(by|without)\s*\([^)]*\)", "", bare)
    bare = re.sub(r"(?<![a-zA-Z0-9_:])\d+(\.\d+)?([eE][+-]?\d+)?", "", bare)  # number literals (1e6, 0.95)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*(\(|$|[^a-zA-Z0-9_:(]))", bare):
        word = match.group(0)
        followed = bare[match.end() :].lstrip()
        if followed.startswith("(") or word in PROMQL_WORDS:
            continue  # a function (rate, sum, histogram_quantile)
        names.add(word)
    return names


async def scrape(tmp_path: Path) -> str:
    async with tollway_app(tmp_path) as app, app.http() as http:
        body = {"model": "demo", "messages": [{"role": "user", "content": "Hello"}]}
        answered = await http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
        assert answered.status_code == 200
        response = await http.get("/metrics")
        assert response.status_code == 200
        return response.text


async def test_counters_are_counters_and_the_process_is_described(tmp_path: Path) -> None:
    exposition = await scrape(tmp_path)
    types = types_of(exposition)
    for name in COUNTS_SINCE_START:
        assert types.get(name) == "counter", (name, types.get(name))
    for name, kind in types.items():
        assert (kind == "counter") == name.endswith("_total"), (name, kind)
    for name, kind in (
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("process_open_fds", "gauge"),
        ("python_info", "gauge"),
        ("python_gc_collections_total", "counter"),
    ):
        assert types.get(name) == kind, name
    assert prometheus_value(exposition, "process_resident_memory_bytes") > 10_000_000  # Tollway loaded
    assert (
        prometheus_value(exposition, 'tollway_requests_total{route="/v1/chat/completions",model="demo",status="200"}')
        == 1
    )


async def test_every_dashboard_expression_names_an_exported_metric(tmp_path: Path) -> None:
    types = types_of(await scrape(tmp_path))
    exported = set(types)
    for name, kind in types.items():
        if kind == "histogram":
            exported |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(expressions) >= 10
    for expr in expressions:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, (expr, names - exported)


def test_the_expression_reader_finds_metric_names_only() -> None:
    expr = 'histogram_quantile(0.95, sum by (le, provider) (rate(tollway_target_ttfb_seconds_bucket{x="a b"}[5m])))'
    assert metric_names(expr) == {"tollway_target_ttfb_seconds_bucket"}
    assert metric_names("process_resident_memory_bytes / 1e6") == {"process_resident_memory_bytes"}
    assert metric_names("rate(a_total[5m]) / rate(b_total[5m])") == {"a_total", "b_total"}


def dead_pid() -> str:
    """The pid of a process that has exited (a worker killed without stopping)."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return finished.stdout.decode().strip()


def worker_metrics(requests: int, backlog: float, storage_up: int) -> GatewayMetrics:
    metrics = GatewayMetrics()
    for _ in range(requests):
        metrics.requests.inc(("/v1/chat/completions", "demo", "200"))
        metrics.latency.observe(0.02, ("/v1/chat/completions", "demo"))
    metrics.add_gauge("tollway_usage_backlog_events", "Backlog.", lambda: backlog, mode="livesum")
    metrics.add_gauge("tollway_storage_up", "Storage.", lambda: storage_up, mode="livemin")
    return metrics


def test_workers_counts_are_summed_and_gauges_combined_by_their_mode_over_the_live_workers(tmp_path: Path) -> None:
    vanished = MultiprocessExposition(tmp_path, worker_metrics(4, 5, 0), identity=dead_pid())
    vanished.flush()  # then killed: it never stops
    stopped = MultiprocessExposition(tmp_path, worker_metrics(3, 7, 0), identity=str(os.getppid()))
    stopped.close()
    answering = MultiprocessExposition(tmp_path, worker_metrics(2, 1, 1))
    text = answering.scrape().decode()
    assert types_of(text)["tollway_requests_total"] == "counter"
    chat = '{route="/v1/chat/completions",model="demo"}'
    assert prometheus_value(text, 'tollway_requests_total{route="/v1/chat/completions",status="200"}') == 9
    assert prometheus_value(text, f"tollway_request_duration_seconds_count{chat}") == 9
    assert prometheus_value(text, 'tollway_request_duration_seconds_bucket{le="0.025"}') == 9
    assert prometheus_value(text, 'tollway_request_duration_seconds_bucket{le="0.01"}') == 0
    assert prometheus_value(text, f"tollway_request_duration_seconds_sum{chat}") == pytest.approx(0.18)
    # the stopped and the vanished workers' gauges are left out: only the answering worker's remain
    assert prometheus_value(text, "tollway_usage_backlog_events") == 1
    assert prometheus_value(text, "tollway_storage_up") == 1
    assert "pid=" not in text
    assert prometheus_value(text, "process_resident_memory_bytes") > 10_000_000
    assert prometheus_value(text, "process_cpu_seconds_total") > 0
    assert types_of(text)["python_info"] == "gauge"
    answering.close()
    vanished.close(mark_dead=False)


def test_two_live_workers_gauges_sum_a_backlog_and_take_the_worst_health(tmp_path: Path) -> None:
    sibling = MultiprocessExposition(tmp_path, worker_metrics(1, 5, 0), identity=str(os.getppid()))  # alive
    sibling.flush()
    answering = MultiprocessExposition(tmp_path, worker_metrics(1, 1, 1))
    text = answering.scrape().decode()
    assert prometheus_value(text, "tollway_usage_backlog_events") == 6
    assert prometheus_value(text, "tollway_storage_up") == 0
    assert prometheus_value(text, "tollway_requests_total") == 2
    sibling.close()
    answering.close()


def test_a_worker_with_a_reused_pid_counts_on_from_what_the_earlier_one_left(tmp_path: Path) -> None:
    MultiprocessExposition(tmp_path, worker_metrics(4, 0, 1), identity="4242").close()
    again = MultiprocessExposition(tmp_path, worker_metrics(1, 0, 1), identity="4242")
    again.flush()
    answering = MultiprocessExposition(tmp_path, worker_metrics(0, 0, 1))
    assert prometheus_value(answering.scrape().decode(), "tollway_requests_total") == 5
    again.close()
    answering.close()


async def test_every_gauge_says_how_workers_combine(tmp_path: Path) -> None:
    async with in_process(tmp_path, QUICKSTART) as started:
        families = list(started.runtime.metrics.registry.collect())
    gauges = [family for family in families if family.type == "gauge"]
    assert len(gauges) >= 8
    for family in gauges:
        assert isinstance(family, ModeGauge) or family.name in COLLECTOR_GAUGE_MODES, family.name


def test_serve_with_two_workers_shows_every_request_on_every_scrape(tmp_path: Path) -> None:
    config = {
        "providers": [{"name": "local", "type": "simulator"}],
        "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
        "consumers": [{"username": "acme-corp", "keys": [KEY]}],
    }
    process = TollwayProcess(tmp_path, config, args=("--workers", "2")).start()
    try:
        body = {"model": "demo", "messages": [{"role": "user", "content": "Hello"}]}
        with plain_http(base_url=process.base_url, timeout=10) as http:
            for _ in range(10):  # new connections: the kernel spreads them over the two workers
                with plain_http(base_url=process.base_url, timeout=10) as fresh:
                    answer = fresh.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
                    assert answer.status_code == 200

            def requests_seen() -> list[int]:
                seen = []
                for _ in range(6):  # successive scrapes, answered by either worker
                    with plain_http(base_url=process.base_url, timeout=10) as fresh:
                        text = fresh.get("/metrics").text
                    selector = 'tollway_requests_total{route="/v1/chat/completions"}'
                    seen.append(int(prometheus_value(text, selector)) if selector.split("{")[0] in text else 0)
                return seen

            wait_until(lambda: requests_seen() == [10] * 6, timeout_s=15)
            text = http.get("/metrics").text
            assert "# TYPE tollway_requests_total counter" in text
            assert prometheus_value(text, "tollway_request_duration_seconds_count") == 10
            assert prometheus_value(text, "tollway_usage_journal_writable") == 1  # livemin over the two workers
            assert prometheus_value(text, "process_resident_memory_bytes") > 20_000_000  # both workers' memory
            assert "pid=" not in text
    finally:
        process.stop()
