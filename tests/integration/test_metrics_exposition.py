"""/metrics as Prometheus reads it: counts since start are typed `counter` and named `..._total` (so rate() is
right), nothing else is named `_total`, the standard process_* and python_* series are there, and the Grafana
dashboard in examples/grafana/ only queries metrics this exposition has."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.agent_app import KEY, tollway_app

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
