"""/metrics as Prometheus reads it: counts since start are typed `counter` and named `..._total` (so rate() is
right), nothing else is named `_total`, the standard process_* and python_* series are there, the Grafana
dashboard in examples/grafana/ only queries metrics this exposition has, and `serve --workers 2` answers every
scrape with all the workers' requests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.support.agent_app import KEY, tollway_app
from tests.support.net import wait_until
from tests.support.tollway_process import TollwayProcess
from tollway.gateway.shared_metrics import merge

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
    async with tollway_app(tmp_path) as app, app.client() as http:
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
    rss = next(line for line in exposition.splitlines() if line.startswith("process_resident_memory_bytes "))
    assert int(rss.split()[1]) > 10_000_000  # a Python process with Tollway loaded
    assert 'tollway_requests_total{route="/v1/chat/completions",model="demo",status="200"} 1' in exposition


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


def test_samples_of_counters_and_histograms_are_summed_over_workers_and_gauges_are_the_scraped_ones() -> None:
    one = "\n".join(
        [
            "# HELP t_total T.",
            "# TYPE t_total counter",
            't_total{route="/a b"} 3',
            "# TYPE h histogram",
            'h_bucket{le="1"} 1',
            'h_bucket{le="+Inf"} 2',
            "h_sum 1.5",
            "h_count 2",
            "# TYPE g gauge",
            "g 7",
        ]
    )
    two = "\n".join(
        [
            "# TYPE t_total counter",
            't_total{route="/a b"} 4',
            't_total{route="/c"} 1',
            "# TYPE g gauge",
            "g 9",
            "# TYPE h histogram",
            'h_bucket{le="1"} 0',
            'h_bucket{le="+Inf"} 1',
            "h_sum 0.25",
            "h_count 1",
            "# TYPE only_total counter",
            "only_total 5",
        ]
    )
    merged = merge(one, [two]).decode().splitlines()
    assert merged == [
        "# HELP t_total T.",
        "# TYPE t_total counter",
        't_total{route="/a b"} 7',
        't_total{route="/c"} 1',
        "# TYPE h histogram",
        'h_bucket{le="1"} 1',
        'h_bucket{le="+Inf"} 3',
        "h_sum 1.75",
        "h_count 3",
        "# TYPE g gauge",
        "g 7",
        "# TYPE only_total counter",
        "only_total 5",
    ]


def test_serve_with_two_workers_shows_every_request_on_every_scrape(tmp_path: Path) -> None:
    config = {
        "providers": [{"name": "local", "type": "simulator"}],
        "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
        "consumers": [{"username": "acme-corp", "keys": [KEY]}],
    }
    process = TollwayProcess(tmp_path, config, args=("--workers", "2")).start()
    try:
        body = {"model": "demo", "messages": [{"role": "user", "content": "Hello"}]}
        with httpx.Client(base_url=process.base_url, timeout=10) as http:
            for _ in range(10):  # new connections: the kernel spreads them over the two workers
                with httpx.Client(base_url=process.base_url, timeout=10) as fresh:
                    answer = fresh.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
                    assert answer.status_code == 200

            def requests_seen() -> list[int]:
                seen = []
                for _ in range(6):  # successive scrapes, answered by either worker
                    with httpx.Client(base_url=process.base_url, timeout=10) as fresh:
                        text = fresh.get("/metrics").text
                    line = next(
                        (x for x in text.splitlines() if x.startswith('tollway_requests_total{route="/v1/chat/')), None
                    )
                    seen.append(int(line.rsplit(" ", 1)[1]) if line else 0)
                return seen

            wait_until(lambda: requests_seen() == [10] * 6, timeout_s=15)
            assert "# TYPE tollway_requests_total counter" in http.get("/metrics").text
    finally:
        process.stop()
