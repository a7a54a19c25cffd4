#!/usr/bin/env python3
"""Idle CPU: what an idle `tollway serve` spends on background work (polls, detectors, spool).

    .venv/bin/python bench/idle.py external process     # one line per ingest mode
    .venv/bin/python bench/idle.py external --warmup 8 --seconds 20 --rounds 2

Starts `tollway serve` (this checkout's src/) against a fresh SQLite database with one consumer key and an
unreachable upstream, sends it no request, waits `--warmup` seconds (startup, migrations, first polls),
then measures the CPU of its process tree (the storage process included, see run.tree_cpu_seconds) over
`--seconds` seconds, and prints it as ms of CPU per second of wall time. Every round starts a fresh
server. The number is noisy on a shared machine: run several rounds, report them all.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import run as harness  # noqa: E402


def measure(mode: str, warmup: float, seconds: float) -> float:
    """ms of CPU per second of an idle server's process tree in ingest mode `mode`."""
    tmp = Path(tempfile.mkdtemp(prefix="tollway-idle-"))
    cfg = tmp / "tollway.yaml"
    cfg.write_text(
        "providers:\n"
        f'  - {{name: upstream, type: openai, base_url: "http://127.0.0.1:9/v1", api_key: "{harness.UPSTREAM_KEY}"}}\n'
        "models:\n"
        "  - {name: bench, targets: [{provider: upstream, model: gpt-4o-mini}]}\n"
        "consumers:\n"
        f"  - {{username: bench-user, keys: [{harness.TOLLWAY_KEY}]}}\n"
    )
    (tmp / "journal").mkdir()
    env = dict(
        os.environ,
        TOLLWAY_DATABASE_URL=f"sqlite:///{tmp}/tollway.db",
        TOLLWAY_JOURNAL_DIR=str(tmp / "journal"),
        TOLLWAY_ADMIN_TOKEN="bench",
        TOLLWAY_INGEST=mode,
        PYTHONPATH=str(ROOT / "src"),
    )
    port = harness.free_port()
    cmd = [sys.executable, "-m", "tollway", "serve", "--config", str(cfg), "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(warmup)
        if proc.poll() is not None:
            raise SystemExit(f"tollway serve exited with {proc.returncode} during warm-up")
        c0, t0 = harness.tree_cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = harness.tree_cpu_seconds(proc.pid), time.monotonic()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait()
    return (c1 - c0) / (t1 - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modes", nargs="*", default=["external"], choices=["external", "process"])
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.rounds):
        for mode in args.modes:
            ms = measure(mode, args.warmup, args.seconds)
            print(f"{mode}: idle CPU {ms / 10:.2f}% of a core ({ms:.1f} ms/s)", flush=True)


if __name__ == "__main__":
    main()
