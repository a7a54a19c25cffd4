"""The mutation check: break the code one line at a time, run the tests that should notice, report.

Each mutation replaces one exact line fragment (found as often as the list says, usually once; the
first is mutated) in a temporary copy of src/ and tests/, then runs only the named tests there
(`-x`, first failure stops). A mutation is CAUGHT when the tests fail, SURVIVED when they pass,
and STALE when its fragment is no longer in the file (the code moved: update the list).
Run from the repository root:

    .venv/bin/python -m tests.mutation.run            # every mutation
    .venv/bin/python -m tests.mutation.run auth rollup  # those whose name contains a word

Exit status 1 when a mutation survived or is stale.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    occurrences: int = 1  # how often `old` is in the file; the first one is mutated


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
    ),
    M(
        "events-api-no-read-time-limit",
        "src/tollway/api/events.py",
        "            if len(body) > max_body_bytes:",
        "            if False:",
        ("tests/integration/test_body_limits.py",),
    ),
    M(
        "management-no-read-time-limit",
        "src/tollway/api/body_limit.py",
        "            if size > self._limit:",
        "            if False:",
        ("tests/integration/test_body_limits.py",),
    ),
    # the five the audit saw caught
    M(
        "cached-tokens-not-subtracted",
        "src/tollway/gateway/usage.py",
        "        input=prompt - cached - written,",
        "        input=prompt - written,",
        ("tests/unit/test_usage_extraction.py", "tests/unit/test_provider_usage.py"),
        occurrences=2,  # chat completions first, then Responses
    ),
    M(
        "journal-replay-skips-a-record",
        "src/tollway/adapters/journal/file.py",
        "            records.extend(claimed.records)",
        "            records.extend(claimed.records[1:])",
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
        "src/tollway/billing/invoicing/rating.py",
        "    cut_start = max(start, subscription.active_from)",
        "    cut_start = start",
        ("tests/unit/test_rating.py", "tests/property/test_invoice_oracle.py"),
    ),
    M(
        "free-quantity-after-price",
        "src/tollway/billing/pricing/usage.py",
        "    priced, unit_price, tiers, packages = _price(billable, terms.price)",
        "    priced, unit_price, tiers, packages = _price(quantity, terms.price)",
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
        "src/tollway/adapters/sql/catalog_codec.py",
        "else str(value)  # str() keeps the exact digits and exponent",
        "else str(value.normalize())",
        ("tests/unit/test_catalog_codec_literals.py",),
    ),
]


def run(mutation: Mutation, workspace: Path) -> tuple[str, float, str]:
    target = workspace / mutation.path
    original = (ROOT / mutation.path).read_text()
    if original.count(mutation.old) != mutation.occurrences:
        return "STALE", 0.0, f"fragment found {original.count(mutation.old)} times"
    target.write_text(original.replace(mutation.old, mutation.new, 1))
    started = time.monotonic()
    try:
        env = {**os.environ, "PYTHONPATH": str(workspace / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutation.tests]
        done = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    finally:
        target.write_text(original)
    elapsed = time.monotonic() - started
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if done.returncode == 0:
        return "SURVIVED", elapsed, ""
    if done.returncode == 1:
        return "CAUGHT", elapsed, failed[0] if failed else ""
    return "BROKEN", elapsed, done.stdout[-500:] + done.stderr[-500:]  # the tests could not run


def main(words: list[str]) -> int:
    chosen = [m for m in MUTATIONS if not words or any(w in m.name for w in words)]
    with tempfile.TemporaryDirectory(prefix="tollway-mutation-") as directory:
        workspace = Path(directory)
        for part in ("src", "tests"):
            shutil.copytree(ROOT / part, workspace / part, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pyproject.toml", workspace / "pyproject.toml")
        bad = 0
        for mutation in chosen:
            verdict, elapsed, detail = run(mutation, workspace)
            bad += verdict != "CAUGHT"
            print(f"{verdict:8} {elapsed:6.1f}s  {mutation.name:34} {detail}", flush=True)
    print(f"{len(chosen) - bad} of {len(chosen)} caught")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
