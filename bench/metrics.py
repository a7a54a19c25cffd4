#!/usr/bin/env python3
"""What a gateway request's metric updates cost, and what a scrape costs.

Per request the gateway makes seven metric updates: `tollway_requests_total` and
`tollway_request_duration_seconds` (relay), `tollway_tokens_total` twice (input, output), and per target
`tollway_target_attempts_total`, `tollway_target_duration_seconds`, `tollway_target_ttfb_seconds`
(balancing). This times those seven, best of `--rounds` runs of `--requests` requests, three ways:

- `tollway`: Tollway's own in-process aggregation (gateway/metrics.py: a dict per metric, keyed by the label
  values; what the gateway runs, also under `--workers N`, where it is flushed to prometheus_client's
  multiprocess files twice a second and at each scrape);
- `prometheus_client`: prometheus_client's Counter and Histogram, `.labels(...)` per update (its usual use);
- `prometheus_client (multiprocess)`: the same with PROMETHEUS_MULTIPROC_DIR set (each update writes its
  mmap file), in a child process (the library picks its value class at import).

Then the cost of one scrape: a single process's exposition, and with `--workers 2`'s flush and merge
(each worker's files read and summed) over the series one run of this benchmark leaves.

    .venv/bin/python bench/metrics.py
    .venv/bin/python bench/metrics.py --rounds 9 --requests 20000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet")
ROUTE = "/v1/chat/completions"


def tollway_updates() -> Callable[[int], None]:
    from tollway.metrics import Counter, Histogram

    requests = Counter("tollway_requests_total", "h", ("route", "model", "status"))
    latency = Histogram("tollway_request_duration_seconds", "h", ("route", "model"))
    tokens = Counter("tollway_tokens_total", "h", ("model", "provider", "type"))
    attempts = Counter("tollway_target_attempts_total", "h", ("provider", "model"))
    duration = Histogram("tollway_target_duration_seconds", "h", ("provider", "model"))
    ttfb = Histogram("tollway_target_ttfb_seconds", "h", ("provider", "model"))

    def one(n: int) -> None:
        model = MODELS[n % 3]
        requests.inc((ROUTE, model, "200"))
        latency.observe(0.0123, (ROUTE, model))
        tokens.inc((model, "openai", "input"), 12)
        tokens.inc((model, "openai", "output"), 30)
        attempts.inc(("openai", model))
        duration.observe(0.011, ("openai", model))
        ttfb.observe(0.004, ("openai", model))

    return one


def prometheus_updates() -> Callable[[int], None]:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry(auto_describe=False)
    requests = Counter("tollway_requests", "h", ("route", "model", "status"), registry=registry)
    latency = Histogram("tollway_request_duration_seconds", "h", ("route", "model"), registry=registry)
    tokens = Counter("tollway_tokens", "h", ("model", "provider", "type"), registry=registry)
    attempts = Counter("tollway_target_attempts", "h", ("provider", "model"), registry=registry)
    duration = Histogram("tollway_target_duration_seconds", "h", ("provider", "model"), registry=registry)
    ttfb = Histogram("tollway_target_ttfb_seconds", "h", ("provider", "model"), registry=registry)

    def one(n: int) -> None:
        model = MODELS[n % 3]
        requests.labels(ROUTE, model, "200").inc()
        latency.labels(ROUTE, model).observe(0.0123)
        tokens.labels(model, "openai", "input").inc(12)
        tokens.labels(model, "openai", "output").inc(30)
        attempts.labels("openai", model).inc()
        duration.labels("openai", model).observe(0.011)
        ttfb.labels("openai", model).observe(0.004)

    return one


def best_per_request(one: Callable[[int], None], rounds: int, requests: int) -> float:
    """Best of `rounds` (CPU time of this process), in microseconds per request."""
    one(0)
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for n in range(requests):
            one(n)
        best = min(best, time.process_time() - started)
    return best / requests * 1e6


def scrape_costs(rounds: int) -> tuple[float, float]:
    """Microseconds for one exposition of a single process, and for a `--workers 2` scrape (flush + merge)."""
    from tollway.gateway.metrics import GatewayMetrics
    from tollway.gateway.multiprocess_metrics import MultiprocessExposition

    metrics = GatewayMetrics()
    for n in range(3000):
        model = MODELS[n % 3]
        metrics.requests.inc((ROUTE, model, "200"))
        metrics.latency.observe(0.0123 * (n % 7), (ROUTE, model))
        metrics.tokens.inc((model, "openai", "input"), 12)
        metrics.tokens.inc((model, "openai", "output"), 30)
    single = min(_timed(metrics.exposition) for _ in range(rounds))
    with tempfile.TemporaryDirectory() as directory:
        other = MultiprocessExposition(Path(directory), metrics, identity="2")  # a sibling worker's files
        other.close(mark_dead=False)
        shared = MultiprocessExposition(Path(directory), metrics)
        multi = min(_timed(shared.scrape) for _ in range(rounds))
        shared.close()
    return single * 1e6, multi * 1e6


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--only", choices=("tollway", "prometheus_client", "multiprocess"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.only == "multiprocess":  # the child: PROMETHEUS_MULTIPROC_DIR set before prometheus_client loads
        print(best_per_request(prometheus_updates(), options.rounds, options.requests))
        return
    rows = [
        ("tollway (in-process aggregation)", best_per_request(tollway_updates(), options.rounds, options.requests)),
        (
            "prometheus_client, .labels() per update",
            best_per_request(prometheus_updates(), options.rounds, options.requests),
        ),
    ]
    with tempfile.TemporaryDirectory() as directory:
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--only",
                "multiprocess",
                "--rounds",
                str(options.rounds),
                "--requests",
                str(options.requests),
            ],
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory},
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(("prometheus_client, multiprocess mode", float(child.stdout)))
    print(f"per request (7 metric updates), best of {options.rounds} x {options.requests}:")
    for name, micros in rows:
        print(f"  {name:42} {micros:6.2f} µs")
    single, multi = scrape_costs(options.rounds)
    print(f"one scrape: single process {single / 1000:.2f} ms; --workers 2 (flush + merge) {multi / 1000:.2f} ms")


if __name__ == "__main__":
    main()
