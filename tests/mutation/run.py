"""The mutation check: break the code one line at a time, run the tests that should notice, report.

Each mutation replaces one exact line fragment (found as often as the list says, usually once; the
first is mutated) in a temporary copy of src/ and tests/, then runs only the named tests there
(`-x`, first failure stops). A mutation is CAUGHT when the tests fail, SURVIVED when they pass,
and STALE when its fragment is no longer in the file (the code moved: update the list).
Run from the repository root:

    .venv/bin/python -m tests.mutation.run            # every mutation
    .venv/bin/python -m tests.mutation.run auth rollup  # those whose name contains a word
    .venv/bin/python -m tests.mutation.run --ci       # the subset `make test` runs (fast tests only)
    .venv/bin/python -m tests.mutation.run --jobs 1   # one at a time (default: 2 copies side by side)

The tests of a mutation run in a child forked from this process, which has already imported pytest,
Hypothesis and the third-party libraries (never tollway or the tests): a child then costs its tests
and the import of the mutated code, not an interpreter start. Hypothesis runs derandomized and without
its example database there, so a verdict never depends on a seed or on an earlier run.

Exit status 1 when a mutation survived, is stale or its tests could not run.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import importlib
import importlib.util
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    occurrences: int = 1  # how often `old` is in the file; the first one is mutated
    ci: bool = True  # run by `make test` (--ci): its tests are fast unit and contract tests


M = Mutation
MUTATIONS = [
    # the three the audit saw survive
    M(
        "rollup-end-inclusive",
        "src/tollway/adapters/sql/store.py",
        "conditions.append(table.c.bucket_us < end_us)",
        "conditions.append(table.c.bucket_us <= end_us)",
        ("tests/contract/test_boundaries.py",),
    ),
    M(
        "rollup-start-exclusive",
        "src/tollway/adapters/sql/store.py",
        "conditions.append(table.c.bucket_us >= start_us)",
        "conditions.append(table.c.bucket_us > start_us)",
        ("tests/contract/test_boundaries.py",),
    ),
    M(
        "admin-token-first-8-bytes",
        "src/tollway/api/auth.py",
        "hmac.compare_digest(presented.strip().encode(), expected)",
        "hmac.compare_digest(presented.strip().encode()[:8], expected[:8])",
        ("tests/integration/test_admin_auth.py",),
        ci=False,  # a tollway serve process
    ),
    M(
        "events-api-no-read-time-limit",
        "src/tollway/api/events.py",
        "        if len(body) > max_body_bytes:",
        "        if False:",
        ("tests/integration/test_body_limits.py",),
        ci=False,
    ),
    M(
        "management-no-read-time-limit",
        "src/tollway/api/body_limit.py",
        "            if size > self._limit:",
        "            if False:",
        ("tests/integration/test_body_limits.py",),
        ci=False,
    ),
    # the five the audit saw caught
    M(
        "cached-tokens-not-subtracted",
        "src/tollway/gateway/usage.py",
        "prompt - cached - written,",
        "prompt - written,",
        ("tests/unit/test_usage_extraction.py", "tests/unit/test_provider_usage.py"),
        occurrences=2,  # chat completions first, then Responses
    ),
    M(
        "journal-replay-skips-a-record",
        "src/tollway/adapters/journal/file.py",
        "            recovered.append(Recovered(claimed.records, final=claimed.final))",
        "            recovered.append(Recovered(claimed.records[1:], final=claimed.final))",
        ("tests/unit/test_journal_pipeline.py", "tests/unit/test_metering_replay.py"),
    ),
    M(
        "dedup-ignores-source",
        "src/tollway/adapters/memory/store.py",
        "            key = (event.source, event.id)",
        '            key = ("", event.id)',
        ("tests/contract/test_metering_store.py::test_dedup_on_source_and_id_and_conflicts_are_counted",),
    ),
    M(
        "include-usage-not-forced",
        "src/tollway/gateway/requests.py",
        '        options["include_usage"] = True',
        '        options["include_usage"] = options.get("include_usage", False)',
        ("tests/unit/test_auth_and_requests.py", "tests/unit/test_gateway_asgi.py", "tests/unit/test_streaming.py"),
    ),
    M(
        "anthropic-usage-summed",
        "src/tollway/gateway/translate/anthropic_stream.py",
        "                current[key] = value",
        "                current[key] = current.get(key, 0) + value",
        ("tests/unit/test_translate_anthropic.py", "tests/unit/test_streaming.py"),
    ),
    # helpers the old reference aggregation shared with the stores
    M(
        "day-window-two-days",
        "src/tollway/metering/aggregation.py",
        "        following = day + timedelta(days=1)",
        "        following = day + timedelta(days=2)",
        ("tests/contract/test_boundaries.py",),
    ),
    # billing
    M(
        "volume-tier-boundary-exclusive",
        "src/tollway/billing/pricing/tiered_volume.py",
        "if tier.up_to is None or quantity <= tier.up_to:",
        "if tier.up_to is None or quantity < tier.up_to:",
        ("tests/unit/test_pricing_tiers.py", "tests/unit/test_pricing_models.py"),
    ),
    M(
        "graduated-tier-entered-at-bound",
        "src/tollway/billing/pricing/tiered_graduated.py",
        "entered = position == 1 or quantity > lower",
        "entered = position == 1 or quantity >= lower",
        ("tests/unit/test_pricing_tiers.py", "tests/unit/test_pricing_models.py"),
    ),
    M(
        "rounding-half-even",
        "src/tollway/money.py",
        "quantize(Decimal(1), rounding=ROUND_HALF_UP",
        "quantize(Decimal(1), rounding='ROUND_HALF_EVEN'",
        ("tests/unit/test_money.py", "tests/unit/test_rating.py"),
    ),
    M(
        "subscription-start-not-cut",
        "src/tollway/billing/invoicing/phases.py",
        "    cut_start = max(start, subscription.active_from)",
        "    cut_start = start",
        ("tests/unit/test_rating.py", "tests/property/test_invoice_oracle.py"),
    ),
    M(
        "free-quantity-after-price",
        "src/tollway/billing/pricing/usage.py",
        "    model = pricers.of(terms.price).charge(billable, terms.price)",
        "    model = pricers.of(terms.price).charge(quantity, terms.price)",
        ("tests/unit/test_pricing_usage.py", "tests/unit/test_rating.py"),
    ),
    # a request the real API refuses, passed on; a stored decimal that loses its digits (a round trip
    # with Decimal equality cannot see it: 10.5 == 10.50)
    M(
        "stream-options-without-stream-passed-on",
        "src/tollway/gateway/requests.py",
        "    if options is not None and not stream:",
        "    if False:",
        ("tests/unit/test_auth_and_requests.py",),
    ),
    M(
        "stored-decimal-normalized",
        "src/tollway/billing/pricing/pricer.py",
        "else str(value)  # str() keeps the exact digits and exponent",
        "else str(value.normalize())",
        ("tests/unit/test_catalog_codec_literals.py",),
    ),
    # issue 29: what a later audit slipped past (the first three survived) or caught only by chance or far away;
    # each is now caught by a named, example-based unit or contract test
    M(
        "period-end-inclusive",
        "src/tollway/billing/periods.py",
        "    while add_cadence(anchor, cadence, n + 1) <= at:",
        "    while add_cadence(anchor, cadence, n + 1) < at:",
        ("tests/unit/test_periods.py::test_a_moment_on_a_period_start_opens_that_period",),
    ),
    M(
        "hard-limit-grants-access-at-the-limit",
        "src/tollway/billing/entitlements.py",
        "or usage < limit",
        "or usage <= limit",
        ("tests/unit/catalog/test_entitlements.py::test_usage_exactly_at_a_hard_limit_refuses_access",),
    ),
    M(
        "preview-ignores-its-at",
        "src/tollway/billing/invoicing/preview.py",
        "            usage_until=moment,",
        "            usage_until=None,",
        ("tests/unit/test_invoice_preview.py",),
    ),
    M(
        "cap-compared-before-the-discount",
        "src/tollway/billing/pricing/usage.py",
        "if terms.maximum_amount is not None and amount > terms.maximum_amount:",
        "if terms.maximum_amount is not None and priced > terms.maximum_amount:",
        ("tests/unit/test_pricing_usage.py::test_a_discount_that_crosses_the_cap",),
    ),
    M(
        "proration-by-whole-days",
        "src/tollway/billing/invoicing/lines.py",
        "prorate(price.amount, micros(part[1] - part[0]), micros(period[1] - period[0]))",
        "prorate(price.amount, (part[1] - part[0]).days, (period[1] - period[0]).days)",
        (
            "tests/unit/test_rating.py::test_opening_fee_prorated_over_hours_and_minutes",
            "tests/unit/test_rating.py::test_a_new_york_anchor_prorates_by_the_hours_across_the_dst_change",
        ),
    ),
    M(
        "grace-period-ignored",
        "src/tollway/billing/invoicing/close.py",
        "if start < stop and stop + grace <= now:",
        "if start < stop and stop <= now:",
        ("tests/unit/test_due_invoices.py",),
    ),
    M(
        "webhook-tolerance-one-sided",
        "src/tollway/adapters/stripe/webhooks.py",
        "    if abs(skew) > tolerance_s:",
        "    if skew > tolerance_s:",
        ("tests/unit/test_stripe_webhooks.py",),
    ),
    M(
        "webhook-replay-key-with-receive-time",
        "src/tollway/adapters/stripe/webhooks.py",
        "record_webhook_event(event_id, received_at=now)",
        'record_webhook_event(f"{event_id}@{now.isoformat()}", received_at=now)',
        ("tests/unit/test_stripe_webhooks.py::test_the_replay_key_is_the_event_id_whenever_it_arrives",),
    ),
    M(
        "stripe-invoice-key-not-deterministic",
        "src/tollway/adapters/stripe/sync.py",
        'idempotency_key=idempotency_key("invoice", invoice.id)',
        'idempotency_key=idempotency_key("invoice", invoice.id, self._clock.now().isoformat())',
        ("tests/unit/test_stripe_idempotency.py",),
    ),
    M(
        "invoice-number-not-incremented",
        "src/tollway/adapters/sql/invoices.py",
        'set_={"last_number": invoice_number_series.c.last_number + 1}',
        'set_={"last_number": invoice_number_series.c.last_number}',
        ("tests/contract/test_invoice_store.py::test_each_issue_takes_the_next_number_of_its_year",),
    ),
]


# Imported once here, before any fork, so that a child does not import them again: pytest's plugins
# (entry points) and the libraries tollway and the tests use. Never tollway or the tests themselves.
PRELOAD = (
    "pytest",
    "hypothesis",
    "hypothesis.strategies",
    "sqlalchemy",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.sqlite",
    "alembic",
    "psycopg",
    "fastapi",
    "starlette",
    "pydantic",
    "httpx",
    "orjson",
    "stripe",
    "aiohttp",
    "yaml",
    "typer",
    "jinja2",
)


def preload() -> None:
    for name in PRELOAD:
        with contextlib.suppress(Exception):  # a library missing here only makes the children slower
            importlib.import_module(name)
    for plugin in entry_points(group="pytest11"):
        with contextlib.suppress(Exception):
            plugin.load()
    assert not any(name == "tollway" or name.startswith("tollway.") for name in sys.modules)


@dataclass
class Workspace:
    """A copy of src/, tests/ and pyproject.toml; one mutation at a time is applied to it."""

    path: Path

    @classmethod
    def create(cls, path: Path) -> Workspace:
        for part in ("src", "tests"):
            shutil.copytree(ROOT / part, path / part, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
        shutil.copy(ROOT / "pyproject.toml", path / "pyproject.toml")
        # Compiled once for every child; a mutated file has its .pyc removed (and children write none), so
        # the mutated text is compiled each time, never mistaken for the original by a same-second mtime.
        compileall.compile_dir(path / "src", quiet=1)
        return cls(path)


@dataclass
class Running:
    pid: int
    mutation: Mutation
    workspace: Workspace
    original: str
    log: Path
    started: float


def _child(workspace: Path, tests: tuple[str, ...], log: Path) -> NoReturn:
    """In the forked child: run the tests in the workspace, exit with pytest's status."""
    code = 3
    try:
        output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.chdir(workspace)
        for name in [n for n in sys.modules if n == "tests" or n.startswith("tests.")]:
            del sys.modules[name]  # this runner's own package: the workspace's copy is imported instead
        venv = Path(sys.prefix).resolve()  # may lie inside the checkout (a fresh clone's .venv): its packages stay
        sys.path[:] = [str(workspace / "src"), str(workspace)] + [
            p
            for p in sys.path
            if p and (not Path(p).resolve().is_relative_to(ROOT) or Path(p).resolve().is_relative_to(venv))
        ]
        os.environ["PYTHONPATH"] = str(workspace / "src")  # processes the tests start (tollway serve)
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        sys.dont_write_bytecode = True
        from hypothesis import settings

        settings.register_profile("mutation", database=None, derandomize=True)
        settings.load_profile("mutation")
        # the plugins preloaded above could not have their asserts rewritten: pytest says so, as a warning
        quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
        code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", *quiet, *tests]))
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def start(mutation: Mutation, workspace: Workspace) -> Running | str:
    """Apply the mutation to the workspace and fork its tests; the reason when it cannot be applied."""
    source = ROOT / mutation.path
    original = source.read_text()
    if original.count(mutation.old) != mutation.occurrences:
        return f"fragment found {original.count(mutation.old)} times"
    target = workspace.path / mutation.path
    target.write_text(original.replace(mutation.old, mutation.new, 1))
    Path(importlib.util.cache_from_source(str(target))).unlink(missing_ok=True)
    log = workspace.path / "mutation.log"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(workspace.path, mutation.tests, log)
    return Running(pid, mutation, workspace, original, log, time.monotonic())


def verdict(exit_status: int, log: Path) -> tuple[str, str]:
    output = log.read_text(errors="replace")
    failed = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if exit_status == 0:
        return "SURVIVED", ""
    if exit_status == 1:
        return "CAUGHT", failed[0] if failed else ""
    return "BROKEN", output[-1000:]  # the tests could not run (no tests, a usage or an import error)


def run_all(chosen: list[Mutation], jobs: int, directory: Path) -> int:
    workspaces = [Workspace.create(directory / f"copy{n}") for n in range(max(1, min(jobs, len(chosen))))]
    waiting = list(chosen)
    running: dict[int, Running] = {}
    bad = 0
    while waiting or running:
        while waiting and len(running) < len(workspaces):
            free = next(w for w in workspaces if all(r.workspace is not w for r in running.values()))
            mutation = waiting.pop(0)
            started = start(mutation, free)
            if isinstance(started, str):
                bad += 1
                print(f"{'STALE':8} {0.0:5.1f}s {0.0:5.1f}s cpu  {mutation.name:38} {started}", flush=True)
                continue
            running[started.pid] = started
        pid, status, usage = os.wait4(-1, 0)
        done = running.pop(pid)
        (done.workspace.path / done.mutation.path).write_text(done.original)
        elapsed = time.monotonic() - done.started
        cpu = usage.ru_utime + usage.ru_stime  # the child's and its own waited-for children's
        outcome, detail = verdict(os.waitstatus_to_exitcode(status), done.log)
        bad += outcome != "CAUGHT"
        print(f"{outcome:8} {elapsed:5.1f}s {cpu:5.1f}s cpu  {done.mutation.name:38} {detail}", flush=True)
    return bad


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation.run", description=__doc__.splitlines()[0])
    parser.add_argument("words", nargs="*", help="run the mutations whose name contains one of these words")
    parser.add_argument("--ci", action="store_true", help="only the subset `make test` runs (fast tests)")
    parser.add_argument("--jobs", type=int, default=2, help="mutations tested side by side (default 2)")
    options = parser.parse_args(arguments)
    chosen = [
        m
        for m in MUTATIONS
        if (not options.words or any(w in m.name for w in options.words)) and (m.ci or not options.ci)
    ]
    began = time.monotonic()
    preload()
    with tempfile.TemporaryDirectory(prefix="tollway-mutation-") as directory:
        bad = run_all(chosen, options.jobs, Path(directory))
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    print(f"{len(chosen) - bad} of {len(chosen)} caught in {time.monotonic() - began:.1f}s ({cpu:.1f}s cpu)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
