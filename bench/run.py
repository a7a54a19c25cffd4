#!/usr/bin/env python3
"""Tollway benchmark harness (stdlib only).

Starts a fast upstream (nginx returning a fixed chat.completion), then, one at a
time, each target in front of it, and drives every target with the same wrk
load (same POST body, same Lua script, same durations):

    direct       wrk -> nginx                                   (the floor)
    passthrough  wrk -> bare Python ASGI pass-through -> nginx  (100% reference)
    tollway      wrk -> tollway serve (auth + metering on) -> nginx
    litellm      wrk -> LiteLLM proxy (production settings) -> nginx

Every Python server is a single worker process pinned to core 0 with taskset;
nginx and wrk share core 1. Each load run is bounded by wrk's -d duration and a
subprocess timeout; all traffic stays on 127.0.0.1.

    python3 bench/run.py                 # main comparison, prints a markdown table
    python3 bench/run.py --write         # ... and updates docs/benchmarks.md
    python3 bench/run.py --candidates    # server/client candidates for the pass-through
    python3 bench/run.py --candidates --write   # ... and updates docs/decisions.md

Run bench/setup.sh first (nginx, wrk, bench/.venv, bench/.venv-litellm).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DOCS = REPO / "docs"
RESULTS = BENCH / "results"

BODY = '{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
STREAM_BODY = '{"model":"bench","messages":[{"role":"user","content":"hi"}],"stream":true}'
PATH = "/v1/chat/completions"
UPSTREAM_KEY = "sk-upstream"
TOLLWAY_KEY = "bench-key"
LITELLM_KEY = "sk-bench-master"

TARGET_CORE = "0"  # Python servers under test
LOAD_CORE = "1"  # nginx + wrk

# The server/client pair chosen in docs/decisions.md; the main run's reference.
DEFAULT_PASSTHROUGH = "uvicorn+aiohttp"

SERVERS = ("uvicorn", "granian")
CLIENTS = ("aiohttp", "httpx")

RESULTS_START = "<!-- bench:results:start -->"
RESULTS_END = "<!-- bench:results:end -->"
CAND_START = "<!-- bench:candidates:start -->"
CAND_END = "<!-- bench:candidates:end -->"


# --------------------------------------------------------------------------- utils


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ncpu() -> int:
    return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def pinned(core: str, argv: list[str]) -> list[str]:
    if shutil.which("taskset") and ncpu() >= 2:
        return ["taskset", "-c", core, *argv]
    return argv


def http(method: str, url: str, body: str | None, headers: dict[str, str], timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body.encode() if body else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime of every live process in process group `pgid` (threads included)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is state (field 3); pgrp is field 5, utime 14, stime 15
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def tree_cpu_seconds(pgid: int) -> float:
    """group_cpu_seconds of `pgid` plus that of the sessions its members started (Tollway's storage process
    runs in its own session so that a Ctrl-C reaches the gateway first; its CPU is the gateway's cost too)."""
    members: set[int] = set()
    leaders: set[int] = set()
    rows = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        rows.append((int(stat.parent.name), int(fields[1]), int(fields[2])))  # pid, ppid, pgrp
    members = {pid for pid, _, pgrp in rows if pgrp == pgid}
    leaders = {pgrp for pid, ppid, pgrp in rows if ppid in members and pgrp != pgid and pgrp == pid}
    return group_cpu_seconds(pgid) + sum(group_cpu_seconds(leader) for leader in leaders)


class Proc:
    """A child process in its own session, stopped by its own process group id."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str | None] | None, logdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.logfile = logdir / f"{name}.log"
        self._fh = self.logfile.open("wb")
        full_env = os.environ.copy()
        for key, val in (env or {}).items():
            if val is None:
                full_env.pop(key, None)
            else:
                full_env[key] = val
        self.p = subprocess.Popen(
            argv, stdout=self._fh, stderr=subprocess.STDOUT, env=full_env, start_new_session=True, cwd=str(BENCH)
        )

    def alive(self) -> bool:
        return self.p.poll() is None

    def tail(self, n: int = 25) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        if self.p.poll() is None:
            for sig, wait in ((signal.SIGTERM, 8.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.p.pid, sig)  # the group this Popen created, nothing else
                except ProcessLookupError:
                    break
                try:
                    self.p.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._fh.close()


# --------------------------------------------------------------------------- upstream


def compact_json(path: Path) -> str:
    text = json.dumps(json.loads(path.read_text()), separators=(",", ":"))
    if "'" in text or "\\" in text:
        raise SystemExit(f"{path}: keep single quotes and backslashes out of the fixed body")
    return text


def sse_body(path: Path) -> str:
    """The unary completion as an SSE stream: a role chunk, three content chunks, the usage chunk, [DONE].
    Escaped for an nginx `return '...'` string (newlines as \\n)."""
    done = json.loads(path.read_text())
    head = {k: done[k] for k in ("id", "created", "model") if k in done}
    head["object"] = "chat.completion.chunk"
    text = done["choices"][0]["message"]["content"] or ""
    parts = [text[i : i + max(1, len(text) // 3)] for i in range(0, len(text), max(1, len(text) // 3))]
    chunks = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    chunks += [{**head, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in parts]
    chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({**head, "choices": [], "usage": done["usage"]})
    body = "".join(f"data: {json.dumps(c, separators=(',', ':'))}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return body.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")


def start_nginx(tmp: Path, logdir: Path) -> tuple[Proc, int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed: run bench/setup.sh")
    port = free_port()
    conf = (BENCH / "upstream" / "nginx.conf.tmpl").read_text()
    for key, val in {
        "{tmp}": str(tmp),
        "{port}": str(port),
        "{completion}": compact_json(BENCH / "upstream" / "chat_completion.json"),
        "{models}": compact_json(BENCH / "upstream" / "models.json"),
        "{stream}": sse_body(BENCH / "upstream" / "chat_completion.json"),
    }.items():
        conf = conf.replace(key, val)
    conf_path = tmp / "nginx.conf"
    conf_path.write_text(conf)
    argv = pinned(LOAD_CORE, [nginx, "-e", str(tmp / "nginx-error.log"), "-p", str(tmp), "-c", str(conf_path)])
    proc = Proc("nginx", argv, None, logdir)
    return proc, port


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    name: str  # short id: direct, passthrough, tollway, litellm, or a candidate
    label: str  # what the table shows
    key: str  # bearer token wrk sends
    url: str = ""
    proc: Proc | None = None  # started for this target, stopped after it
    meter: Proc | None = None  # whose CPU to count when proc is None (direct: nginx)
    helpers: list[Proc] = field(default_factory=list)  # started with it, stopped with it, CPU not counted
    body: str = BODY  # what wrk POSTs (STREAM_BODY for the streaming targets)
    database: Path | None = None  # Tollway's SQLite file: bytes stored per request are read from it
    journal: Path | None = None  # Tollway's journal: a throughput run's CPU is read once it is stored (settle)


def wait_ready(target: Target, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {target.key}"}
    while time.monotonic() < deadline:
        if target.proc is not None and not target.proc.alive():
            raise RuntimeError(f"{target.name} exited early (rc={target.proc.p.returncode}):\n{target.proc.tail()}")
        try:
            status, body = http("POST", target.url + PATH, target.body, headers, timeout=10)
            if status == 200 and (b'"usage"' in body or b"data: [DONE]" in body):  # unary, or a whole stream
                return
            last = f"HTTP {status}: {body[:300]!r}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.25)
    tail = target.proc.tail() if target.proc else ""
    raise RuntimeError(f"{target.name} not ready after {timeout:.0f}s (last: {last})\n{tail}")


def passthrough_argv(server: str, port: int) -> list[str]:
    venv = BENCH / ".venv" / "bin"
    if server == "uvicorn":
        return [
            str(venv / "uvicorn"), "passthrough:app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    if server == "granian":
        return [
            str(venv / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--runtime-threads", "1", "--loop", "uvloop", "--http", "1",
            "--no-ws", "--log-level", "warning", "passthrough:app",
        ]  # fmt: skip
    raise ValueError(server)


def start_passthrough(
    name: str, server: str, client: str, upstream: str, logdir: Path, *, stream: bool = False
) -> Target:
    venv = BENCH / ".venv" / "bin"
    if not (venv / server).exists():
        raise RuntimeError(f"bench/.venv lacks {server}: run bench/setup.sh")
    port = free_port()
    base = upstream + ("/stream/v1" if stream else "/v1")
    env = {"BENCH_CLIENT": client, "BENCH_UPSTREAM": base, "BENCH_UPSTREAM_KEY": UPSTREAM_KEY}
    proc = Proc(name, pinned(TARGET_CORE, passthrough_argv(server, port)), env, logdir)
    label = f"bare pass-through ({server} + {client}){', streaming (SSE body buffered)' if stream else ''}"
    body = STREAM_BODY if stream else BODY
    return Target(name, label, TOLLWAY_KEY, f"http://127.0.0.1:{port}", proc, body=body)


def tollway_bin(arg: str | None) -> Path:
    return Path(arg or os.environ.get("TOLLWAY_BIN") or REPO / ".venv" / "bin" / "tollway")


SPEND_CONFIG = """\
features:
  - {key: output-tokens, meter: llm_tokens, filters: {type: output}}
plans:
  - key: bench
    name: Bench
    currency: USD
    billing_cadence: P1M
    rate_cards:
      - feature: output-tokens
        price: {type: unit, amount: "0.00001"}
        entitlement: {type: metered, limit: "1000000000000", hard: true}
customers:
  - {key: bench-co, name: Bench Co, usage_from: [bench-user], subscription: {plan: bench}}
budgets:
  - {key: bench-tokens, consumer: bench-user, kind: tokens, limit: "1000000000000", window: hour}
rate_limits:
  - {key: bench-rpm, consumer: bench-user, metric: requests, limit: "1000000000000", window: minute}
"""
# tollway-spend-redis: the same limits, counters in this Redis (keys under their own prefix, reused across runs)
SPEND_REDIS_URL = "redis://127.0.0.1:6379/0"


def start_tollway(
    binary: Path,
    upstream: str,
    tmp: Path,
    logdir: Path,
    *,
    split: bool = False,
    weighted: bool = False,
    inline: bool = False,
    stream: bool = False,
    spend: bool = False,
    redis: bool = False,
) -> Target:
    """Tollway, one gateway worker. By default as `make run` starts it: usage stored by its supervised storage
    process (TOLLWAY_INGEST=process, on the same core; its CPU counted). With `inline`, stored in the gateway's
    own process. With `split`, by `tollway worker` (TOLLWAY_INGEST=external) pinned to the load core, so the
    gateway's core does only the request path and the journal append (the worker's CPU not counted). With
    `weighted`, the model has two targets (two providers, both the same nginx) balanced 3:1. With `stream`,
    the client asks for a stream and the upstream answers SSE. With `spend`, spend control is on: the consumer's
    customer has a plan with a hard metered entitlement, and the consumer a hard token budget and a requests rate
    limit (all far from their limits: every call is admitted, reserved and settled); with `redis` too, the
    counters live in Redis."""
    port = free_port()
    if stream:
        upstream += "/stream"
    cfg = tmp / "tollway.yaml"
    if weighted:
        providers = "".join(
            f'  - {{name: {name}, type: openai, base_url: "{upstream}/v1", api_key: "{UPSTREAM_KEY}"}}\n'
            for name in ("upstream-a", "upstream-b")
        )
        model = (
            "  - {name: bench, balance: weighted, targets: [{provider: upstream-a, model: gpt-4o-mini, weight: 3},"
            " {provider: upstream-b, model: gpt-4o-mini, weight: 1}]}\n"
        )
    else:
        providers = f'  - {{name: upstream, type: openai, base_url: "{upstream}/v1", api_key: "{UPSTREAM_KEY}"}}\n'
        model = "  - {name: bench, targets: [{provider: upstream, model: gpt-4o-mini}]}\n"
    cfg.write_text(
        f"providers:\n{providers}models:\n{model}consumers:\n  - {{username: bench-user, keys: [{TOLLWAY_KEY}]}}\n"
        + (SPEND_CONFIG if spend else "")
    )
    state = tmp / f"tollway-{port}"
    (state / "journal").mkdir(parents=True, exist_ok=True)
    env: dict[str, str | None] = {
        "TOLLWAY_DATABASE_URL": f"sqlite:///{state}/bench.db",
        "TOLLWAY_JOURNAL_DIR": str(state / "journal"),
        "TOLLWAY_ADMIN_TOKEN": "bench",
    }
    if redis:
        env |= {"TOLLWAY_REDIS_URL": SPEND_REDIS_URL, "TOLLWAY_SPEND_REDIS_PREFIX": "tollway-bench:"}
    argv = [str(binary), "serve", "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)]
    target = _tollway_target(binary, argv, env, state, logdir, port, split, weighted, inline, stream, spend)
    target.journal = state / "journal"
    return target


def _tollway_target(
    binary: Path,
    argv: list[str],
    env: dict[str, str | None],
    state: Path,
    logdir: Path,
    port: int,
    split: bool,
    weighted: bool,
    inline: bool,
    stream: bool,
    spend: bool,
) -> Target:
    if weighted:
        proc = Proc("tollway-weighted", pinned(TARGET_CORE, argv), env, logdir)
        label = "Tollway, a two-target model balanced 3:1 (weighted)"
        return Target("tollway-weighted", label, TOLLWAY_KEY, f"http://127.0.0.1:{port}", proc)
    database = state / "bench.db"
    if spend:
        redis = "TOLLWAY_REDIS_URL" in env
        name = "tollway-spend-redis" if redis else "tollway-spend"
        proc = Proc(name, pinned(TARGET_CORE, argv), env, logdir)
        label = "Tollway as `make run` starts it, spend control on (entitlement + budget + rate limit per call)"
        label += ", counters in Redis" if redis else ""
        return Target(name, label, TOLLWAY_KEY, f"http://127.0.0.1:{port}", proc, database=database)
    if inline:
        env["TOLLWAY_INGEST"] = "inline"
        proc = Proc("tollway-inline", pinned(TARGET_CORE, argv), env, logdir)
        label = "Tollway, usage stored in the gateway's process (TOLLWAY_INGEST=inline)"
        return Target("tollway-inline", label, TOLLWAY_KEY, f"http://127.0.0.1:{port}", proc, database=database)
    if not split:
        name = "tollway-stream" if stream else "tollway"
        proc = Proc(name, pinned(TARGET_CORE, argv), env, logdir)
        label = "Tollway as `make run` starts it (storage process on the same core, CPU counted)"
        if stream:
            label = "Tollway as `make run` starts it, streaming (SSE relayed)"
        body = STREAM_BODY if stream else BODY
        return Target(name, label, TOLLWAY_KEY, f"http://127.0.0.1:{port}", proc, body=body, database=database)
    env["TOLLWAY_INGEST"] = "external"
    proc = Proc("tollway-split", pinned(TARGET_CORE, argv), env, logdir)
    worker = Proc("tollway-worker", pinned(LOAD_CORE, [str(binary), "worker"]), env, logdir)
    label = "Tollway (1 gateway worker, auth + metering; usage stored by `tollway worker` on the load core)"
    return Target(
        "tollway-split", label, TOLLWAY_KEY, f"http://127.0.0.1:{port}", proc, helpers=[worker], database=database
    )


LITELLM_ENV: dict[str, str | None] = {
    # Production recommendations from LiteLLM's "Best Practices for Production"
    # page (docs.litellm.ai/docs/proxy/prod): no FastAPI info logs, no .env
    # loading; plus: the bundled model cost map (no network at startup), and the
    # no-Redis banner off since it runs one worker on purpose.
    "LITELLM_LOG": "ERROR",
    "LITELLM_MODE": "PRODUCTION",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_DISABLE_NO_REDIS_WARNING": "true",
    "DATABASE_URL": None,  # no database: master-key auth only, nothing written per request
}


def litellm_config(upstream: str) -> str:
    return f"""\
# LiteLLM proxy config for the benchmark, following its production best practices
# (docs.litellm.ai/docs/proxy/prod): master key set (auth on, like Tollway),
# batched spend writes, spend/error logs off, debug logging off.
model_list:
  - model_name: bench
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream}/v1
      api_key: {UPSTREAM_KEY}

general_settings:
  master_key: {LITELLM_KEY}
  proxy_batch_write_at: 60
  disable_spend_logs: true
  disable_error_logs: true

litellm_settings:
  request_timeout: 600
  set_verbose: false
  json_logs: true
"""


def start_litellm(upstream: str, tmp: Path, logdir: Path) -> Target:
    binary = BENCH / ".venv-litellm" / "bin" / "litellm"
    if not binary.exists():
        raise RuntimeError("bench/.venv-litellm/bin/litellm missing: run bench/setup.sh")
    port = free_port()
    cfg = tmp / "litellm.yaml"
    cfg.write_text(litellm_config(upstream))
    # One Uvicorn worker, as its docs suggest ("1 Uvicorn worker per pod").
    argv = [str(binary), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    env = dict(LITELLM_ENV)
    proc = Proc("litellm", pinned(TARGET_CORE, argv), env, logdir)
    return Target(
        "litellm", f"LiteLLM proxy {litellm_version()} (1 worker)", LITELLM_KEY, f"http://127.0.0.1:{port}", proc
    )


def litellm_version() -> str:
    site = BENCH / ".venv-litellm" / "lib"
    for meta in site.glob("python*/site-packages/litellm-*.dist-info/METADATA"):
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return "?"


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    connections: int
    duration_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int = 0
    socket_errors: int = 0
    cpu_us_per_req: float = 0.0  # CPU the server under test spent per request (all its processes)
    round: int = 0  # the round (of --repeat) it was measured in: targets are compared round by round


@dataclass
class Row:
    name: str
    label: str
    c1: list[WrkResult] = field(default_factory=list)
    cn: list[WrkResult] = field(default_factory=list)
    skipped: str = ""
    note: str = ""
    bytes_per_request: float | None = None  # database bytes per stored call (Tollway targets)

    def p50_c1(self) -> float:
        return statistics.median(r.p50_ms for r in self.c1)

    def p99_c1(self) -> float:
        return statistics.median(r.p99_ms for r in self.c1)

    def rps_c1(self) -> float:
        return statistics.median(r.rps for r in self.c1)

    def rps(self) -> float:
        return statistics.median(r.rps for r in self.cn)

    def p50_cn(self) -> float:
        return statistics.median(r.p50_ms for r in self.cn)

    def p99_cn(self) -> float:
        return statistics.median(r.p99_ms for r in self.cn)

    def cpu_us(self) -> float:
        return statistics.median(r.cpu_us_per_req for r in self.cn)

    def rps_range(self) -> str:
        if len(self.cn) < 2:
            return ""
        lo, hi = min(r.rps for r in self.cn), max(r.rps for r in self.cn)
        return f" ({lo:,.0f}–{hi:,.0f})"

    def errors(self) -> int:
        return sum(r.non_2xx + r.socket_errors for r in self.c1 + self.cn)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str, connections: int, duration: float) -> WrkResult:
    def grab(pattern: str) -> str:
        m = re.search(pattern, out, re.M)
        if not m:
            raise ValueError(f"wrk output lacks {pattern!r}:\n{out}")
        return m.group(1)

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        connections=connections,
        duration_s=duration,
        rps=float(grab(r"^Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(grab(r"^\s+50%\s+(\S+)")),
        p99_ms=_ms(grab(r"^\s+99%\s+(\S+)")),
        requests=int(grab(r"^\s+(\d+) requests in")),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(int(x) for x in sock.groups()) if sock else 0,
    )


def wrk_script(tmp: Path, key: str, body: str = BODY) -> Path:
    path = tmp / f"post-{key}-{'stream' if body != BODY else 'unary'}.lua"
    body = body.replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(
        "-- POST the same chat completion on every request (generated by bench/run.py)\n"
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    return path


def settle(server: Proc, journal: Path | None, timeout: float = 120.0) -> None:
    """Wait until Tollway has stored what it was sent (its journal holds no segment but each writer's open one),
    then until its CPU is quiet, so that a run's CPU includes the storing of its own calls, and only that, however
    far the storage process, which yields to request serving, fell behind during the run."""
    deadline = time.monotonic() + timeout
    if journal is not None:
        time.sleep(0.6)  # two hand-off intervals: the last records are handed over
        while time.monotonic() < deadline:
            names = [p.name for p in journal.rglob("*") if p.is_file()]
            writers = {name.split("-")[0] for name in names if name.endswith(".jsonl")}
            if not any(".lease-" in name for name in names) and sum(n.endswith(".jsonl") for n in names) <= len(
                writers
            ):
                break
            time.sleep(0.1)
        else:
            log(f"  WARNING: journal not stored within {timeout:.0f}s: the storage process's CPU is undercounted")
    before = tree_cpu_seconds(server.p.pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = tree_cpu_seconds(server.p.pid)
        if now - before < 0.01:  # under 2% of a core: the periodic hand-off and rollup polls only
            return
        before = now


def run_wrk(
    url: str,
    script: Path,
    connections: int,
    duration: float,
    server: Proc | None = None,
    journal: Path | None = None,
) -> tuple[WrkResult, str]:
    argv = pinned(
        LOAD_CORE,
        [
            "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", "--latency",
            "-s", str(script), url + PATH,
        ],
    )  # fmt: skip
    if server:
        settle(server, journal)
    cpu0 = tree_cpu_seconds(server.p.pid) if server else 0.0
    # Bounded twice: wrk's own -d, and a hard timeout here.
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    if server:
        settle(server, journal)
    cpu1 = tree_cpu_seconds(server.p.pid) if server else 0.0
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    res = parse_wrk(proc.stdout, connections, duration)
    if server and res.requests:
        res.cpu_us_per_req = (cpu1 - cpu0) * 1e6 / res.requests
    return res, proc.stdout


# Calls stored as one row each (llm_calls, migration 0021) and as plain events (older files, failovers).
STORED_CALLS = "SELECT (SELECT count(*) FROM events WHERE type = 'llm.request') + (SELECT count(*) FROM llm_calls)"


def stored_bytes_per_request(database: Path, timeout: float = 60.0) -> float | None:
    """Bytes the SQLite file uses ((page_count - freelist_count) x page_size) per stored call (`llm.request`
    events), once the count of stored calls has stopped moving for two seconds (the run's calls all stored)."""
    import sqlite3

    connection = sqlite3.connect(database, timeout=30)
    try:
        deadline = time.monotonic() + timeout
        calls, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = connection.execute(STORED_CALLS).fetchone()[0]
            if now != calls:
                calls, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= 2.0:
                break
            time.sleep(0.25)
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        size = connection.execute("PRAGMA page_size").fetchone()[0]
    finally:
        connection.close()
    return (pages - free) * size / calls if calls > 0 else None


def measure(target: Target, tmp: Path, args: argparse.Namespace, row: Row, raw: list[str]) -> None:
    script = wrk_script(tmp, target.key, target.body)
    server = target.proc or target.meter
    if args.warmup > 0:
        log(f"  warm-up {args.warmup:g}s at c={args.connections}")
        run_wrk(target.url, script, args.connections, args.warmup)
    log(f"  c=1 for {args.duration:g}s")
    res, out = run_wrk(target.url, script, 1, args.duration)
    row.c1.append(res)
    raw.append(f"## {target.name} c=1\n{out}")
    log(f"  c={args.connections} for {args.duration:g}s")
    spy = start_profiler(target, args) if args.profile and target.proc else None
    res, out = run_wrk(target.url, script, args.connections, args.duration, server, target.journal)
    if spy is not None:
        finish_profiler(spy, target, args)
    row.cn.append(res)
    raw.append(f"## {target.name} c={args.connections}\n{out}")
    if row.errors():
        log(f"  WARNING: {row.errors()} non-2xx/socket errors")


def start_profiler(target: Target, args: argparse.Namespace) -> subprocess.Popen[bytes] | None:
    spy = BENCH / ".venv" / "bin" / "py-spy"
    if not spy.exists() or target.proc is None:
        log("  no bench/.venv/bin/py-spy: not profiling")
        return None
    out = RESULTS / f"{args.stamp}-{target.name.replace('+', '-')}.folded"
    argv = [str(spy), "record", "--nonblocking", "--subprocesses", "-r", "250", "-f", "raw"]
    argv += ["-d", f"{max(1, int(args.duration) - 1)}", "-o", str(out), "-p", str(target.proc.p.pid)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def finish_profiler(spy: subprocess.Popen[bytes], target: Target, args: argparse.Namespace) -> None:
    try:
        spy.wait(timeout=args.duration + 30)
    except subprocess.TimeoutExpired:
        os.killpg(spy.pid, signal.SIGKILL)
        spy.wait()
    folded = RESULTS / f"{args.stamp}-{target.name.replace('+', '-')}.folded"
    if not folded.exists():
        return
    own: dict[str, int] = {}
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] = own.get(frames[-1], 0) + int(count)
    top = sorted(own.items(), key=lambda kv: -kv[1])[:15]
    summary = "\n".join(f"{n / total:6.1%}  {frame}" for frame, n in top)
    log(f"  profile ({total} samples, self time) -> {folded.name}\n{summary}")


# --------------------------------------------------------------------------- reporting


def fmt_ms(v: float) -> str:
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def table(rows: list[Row], ref: str, connections: int) -> str:
    ref_row = next((r for r in rows if r.name == ref and not r.skipped), None)
    direct = next((r for r in rows if r.name == "direct" and not r.skipped), None)
    stream_ref = next((r for r in rows if r.name == "passthrough-stream" and not r.skipped), None)
    c = connections
    head = (
        f"| target | req/s (c={c}) | vs pass-through | CPU µs/req (c={c}) | vs pass-through, by CPU "
        f"| p50 ms (c=1) | p99 ms (c=1) | p50 ms (c={c}) | p99 ms (c={c}) "
        "| added p50 vs direct (c=1) | added p50 vs pass-through (c=1) | bytes stored/request | errors |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        if r.skipped:
            lines.append(f"| {r.label} | skipped: {r.skipped} | | | | | | | | | | | |")
            continue
        base = stream_ref if r.name.endswith("-stream") and stream_ref else ref_row
        ratio = f"{r.rps() / base.rps():.0%}" if base else "n/a"
        cpu_ratio = f"{base.cpu_us() / r.cpu_us():.0%}" if base and r.cpu_us() else "n/a"
        added = f"{r.p50_c1() - direct.p50_c1():+.3f} ms" if direct else "n/a"
        added_pt = f"{r.p50_c1() - ref_row.p50_c1():+.3f} ms" if ref_row else "n/a"
        stored = f"{r.bytes_per_request:,.0f}" if r.bytes_per_request else ""
        lines.append(
            f"| {r.label} | {r.rps():,.0f}{r.rps_range()} | {ratio} | {r.cpu_us():,.0f} | {cpu_ratio} "
            f"| {fmt_ms(r.p50_c1())} | {fmt_ms(r.p99_c1())} | {fmt_ms(r.p50_cn())} | {fmt_ms(r.p99_cn())} "
            f"| {added} | {added_pt} | {stored} | {r.errors()} |"
        )
    notes = (
        "\nreq/s: median over rounds (min–max in brackets). CPU µs/req: CPU time the server under test "
        "(all its processes and threads) spent per request during the throughput run; it moves much less "
        'than req/s when something else shares the machine. "vs pass-through, by CPU" = pass-through '
        "CPU/req ÷ this target's CPU/req, i.e. the throughput ratio on a quiet, CPU-bound core. Streaming rows "
        "are compared with the streaming pass-through. bytes stored/request: the SQLite file's used pages per "
        "stored call after the run (events and rollups of this run's calls, one subject).\n"
    )
    return head + "\n".join(lines) + "\n" + notes


def verdicts(rows: list[Row], ref: str) -> str:
    by = {r.name: r for r in rows if not r.skipped}
    pt, direct, ll = by.get(ref), by.get("direct"), by.get("litellm")
    out = []

    def line(ok: bool, text: str) -> None:
        out.append(f"- {'PASS' if ok else 'FAIL'}: {text}")

    if "tollway" in by and pt:
        tw = by["tollway"]
        line(
            tw.p99_c1() <= 2 * pt.p99_c1(),
            f"Tollway's p99 at c=1 is {tw.p99_c1():.2f} ms, {tw.p99_c1() / pt.p99_c1():.1f}x the pass-through's "
            "(target <= 2x)",
        )
        if tw.bytes_per_request:
            line(
                tw.bytes_per_request <= 400,
                f"Tollway stores {tw.bytes_per_request:,.0f} bytes per request (target <= 400)",
            )
    for name, what in (("tollway-spend", "spend control"), ("tollway-spend-redis", "spend control with Redis")):
        if "tollway" in by and name in by and by["tollway"].cpu_us():
            extra, spread = paired_extra(by["tollway"], by[name])
            line(extra <= 0.10, f"{what} costs {extra:+.0%} CPU per request{spread} (target <= 10%)")
    if "tollway" in by and "tollway-stream" in by and by["tollway"].cpu_us():
        ratio = by["tollway-stream"].cpu_us() / by["tollway"].cpu_us()
        line(ratio <= 1.2, f"Tollway streams at {ratio:.2f}x its unary CPU per request (target <= 1.2x)")
    judged = [(name, by[name]) for name in ("tollway", "tollway-inline", "tollway-split") if name in by]
    for name, tw in judged:
        who = {"tollway": "Tollway", "tollway-inline": "Tollway (inline)"}.get(name, "Tollway (ingest worker apart)")
        if pt:
            ratio = tw.rps() / pt.rps()
            cpu_ratio = pt.cpu_us() / tw.cpu_us() if tw.cpu_us() else 0.0
            line(
                cpu_ratio >= 0.60,
                f"{who} keeps {ratio:.0%} of the bare pass-through's throughput "
                f"({cpu_ratio:.0%} by CPU per request) (target >= 60% by CPU)",
            )
        if direct:
            added = tw.p50_c1() - direct.p50_c1()
            line(added <= 0.5, f"{who} adds {added:.3f} ms p50 at c=1 over the direct upstream (target <= 0.5 ms)")
        if ll:
            x = tw.rps() / ll.rps()
            x_cpu = ll.cpu_us() / tw.cpu_us() if tw.cpu_us() else 0.0
            line(
                x >= 40,
                f"{who} does {x:.1f}x the LiteLLM proxy's throughput ({x_cpu:.1f}x by CPU per request) (target >= 40x)",
            )
        if tw.errors():
            out.append(f"- WARNING: {who} answered {tw.errors()} requests with non-2xx or socket errors")
    if not judged:
        out.append("- not judged: Tollway was not measured in this run")
    return "\n".join(out) + "\n"


def paired_extra(base: Row, row: Row) -> tuple[float, str]:
    """What `row` costs over `base` in CPU per request: the median of the rounds' own ratios (each round measures
    both close together, so the machine's drift between rounds cancels), and the rounds' range as text; the
    ratio of the medians where no round measured both."""
    by_round = {r.round: r.cpu_us_per_req for r in base.cn if r.cpu_us_per_req}
    ratios = sorted(r.cpu_us_per_req / by_round[r.round] - 1 for r in row.cn if r.round in by_round)
    if not ratios:
        return row.cpu_us() / base.cpu_us() - 1, ""
    spread = (
        f" (median of {len(ratios)} rounds' ratios, {ratios[0]:+.0%} to {ratios[-1]:+.0%})" if len(ratios) > 1 else ""
    )
    return statistics.median(ratios), spread


def machine_line() -> str:
    system = f"{platform.system()} {platform.release()}"
    return f"{ncpu()} cores ({cpu_model()}), {system}, Python {platform.python_version()} (harness)"


def replace_between(path: Path, start: str, end: str, content: str, skeleton: str) -> None:
    text = path.read_text() if path.exists() else skeleton
    if start not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n{start}\n{end}\n"
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{before}{start}\n{content.rstrip()}\n{end}{after}")


BENCHMARKS_SKELETON = """# Benchmarks

How fast Tollway's hot path is, measured by `bench/run.py` against peers on the
same fast upstream with the same load generator. See "Method" below.

<!-- bench:results:start -->
<!-- bench:results:end -->
"""

DECISIONS_SKELETON = """# Decisions

<!-- bench:candidates:start -->
<!-- bench:candidates:end -->
"""


# --------------------------------------------------------------------------- main


def tollway_revision() -> str:
    def git(*argv: str) -> str:
        try:
            p = subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return p.stdout.strip() if p.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " + uncommitted changes in src/" if git("status", "--porcelain", "--", "src") else ""
    return f"{head}{dirty}"


def environment_notes(args: argparse.Namespace) -> str:
    return (
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}\n"
        f"- machine: {machine_line()}\n"
        f"- Tollway: git {tollway_revision()}\n"
        f"- wrk {args.wrk_version}, nginx {args.nginx_version}; {args.duration:g} s per run after a "
        f"{args.warmup:g} s warm-up, median of {args.repeat} run(s); c=1 for latency, c={args.connections} "
        "for throughput\n"
        f"- pinning: targets on core {TARGET_CORE}; nginx and wrk on core {LOAD_CORE}; 1-min load average "
        f"before the run: {args.loadavg:.2f}, at its end: {args.loadavg_after:.2f} (the end's includes the run's own "
        "load, about 2: a target and the load generator each keep a core busy; anything beyond it is other work "
        "and skews the figures)\n"
        f"- command: `{args.command}`\n"
    )


def tool_versions(args: argparse.Namespace) -> None:
    def first_line(argv: list[str]) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        return (p.stdout + p.stderr).strip().splitlines()[0] if (p.stdout + p.stderr).strip() else "?"

    m = re.search(r"wrk (?:debian/)?([\w.+~-]+)", first_line(["wrk", "--version"]))
    args.wrk_version = m.group(1) if m else "?"
    m = re.search(r"nginx/([\d.]+)", first_line([shutil.which("nginx") or "/usr/sbin/nginx", "-v"]))
    args.nginx_version = m.group(1) if m else "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run (default 10)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up load per target (default 3)")
    ap.add_argument("--connections", type=int, default=64, help="concurrency for the throughput run (default 64)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds over all targets; medians are reported")
    ap.add_argument(
        "--targets",
        default="direct,passthrough,tollway,tollway-inline,tollway-split,tollway-spend,tollway-spend-redis,"
        "passthrough-stream,"
        "tollway-stream,litellm",
        help="comma list (main mode)",
    )
    ap.add_argument(
        "--passthrough",
        default=DEFAULT_PASSTHROUGH,
        help=f"server+client of the reference (default {DEFAULT_PASSTHROUGH})",
    )
    ap.add_argument("--tollway-bin", default=None, help="path of the tollway CLI (default: REPO/.venv/bin/tollway)")
    ap.add_argument("--candidates", action="store_true", help="compare pass-through server/client candidates")
    ap.add_argument("--write", action="store_true", help="update docs/benchmarks.md (or docs/decisions.md)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="py-spy each Python target during its throughput run (flame data in bench/results; skews figures)",
    )
    args = ap.parse_args()
    args.command = "python3 bench/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    args.command = args.command.strip()

    for tool in ("wrk",):
        if not shutil.which(tool):
            log(f"{tool} is not installed: run bench/setup.sh")
            return 2
    tool_versions(args)
    args.loadavg = os.getloadavg()[0]
    if args.loadavg > 0.5:
        log(f"load average is {args.loadavg:.2f}: something else is using the CPU, figures will be noisy")
    if ncpu() < 2:
        log("fewer than 2 cores: running unpinned, figures are not comparable")

    tmp = Path(tempfile.mkdtemp(prefix="tollway-bench-"))
    logdir = tmp / "logs"
    logdir.mkdir()
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.stamp = stamp
    raw: list[str] = []
    procs: list[Proc] = []

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)

    try:
        nginx, nport = start_nginx(tmp, logdir)
        procs.append(nginx)
        upstream = f"http://127.0.0.1:{nport}"
        wait_ready(Target("nginx", "nginx", UPSTREAM_KEY, upstream, nginx), 10)
        log(f"nginx upstream on {upstream} (core {LOAD_CORE})")

        plan: list[tuple[str, str]] = []  # (name, label) in order
        if args.candidates:
            plan.append(("direct", "direct upstream (nginx)"))
            for server in SERVERS:
                for client in CLIENTS:
                    plan.append((f"{server}+{client}", f"{server} + {client}"))
            ref = f"{DEFAULT_PASSTHROUGH}"
        else:
            wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
            labels = {
                "direct": "direct upstream (nginx)",
                "passthrough": "bare pass-through",
                "tollway": "Tollway",
                "tollway-split": "Tollway with its ingest worker on the load core",
                "tollway-inline": "Tollway, usage stored in the gateway's process",
                "tollway-spend": "Tollway, spend control on",
                "tollway-spend-redis": "Tollway, spend control on, counters in Redis",
                "passthrough-stream": "bare pass-through, streaming",
                "tollway-stream": "Tollway, streaming",
                "tollway-weighted": "Tollway, two-target weighted model",
                "litellm": "LiteLLM proxy",
            }
            for t in wanted:
                if t not in labels:
                    log(f"unknown target {t!r}; choose from {', '.join(labels)}")
                    return 2
                plan.append((t, labels[t]))
            ref = "passthrough"

        rows = {name: Row(name, label) for name, label in plan}
        for rnd in range(args.repeat):
            # every other round in reverse order (ABBA): a drift of the machine's load over a round weighs on the
            # targets compared in it alike
            for name, _label in plan if rnd % 2 == 0 else plan[::-1]:
                row = rows[name]
                if row.skipped:
                    continue
                log(f"[round {rnd + 1}/{args.repeat}] {name}")
                target: Target | None = None
                try:
                    if name == "direct":
                        target = Target("direct", "direct upstream (nginx)", UPSTREAM_KEY, upstream, meter=nginx)
                    elif name == "tollway":
                        binary = tollway_bin(args.tollway_bin)
                        if not binary.exists():
                            row.skipped = f"`{binary}` not found (build the gateway: make venv)"
                            log(f"  SKIP tollway: {binary} not found")
                            continue
                        target = start_tollway(binary, upstream, tmp, logdir)
                    elif name in ("tollway-inline", "tollway-stream", "tollway-spend", "tollway-spend-redis"):
                        binary = tollway_bin(args.tollway_bin)
                        if not binary.exists():
                            row.skipped = f"`{binary}` not found (build the gateway: make venv)"
                            continue
                        target = start_tollway(
                            binary,
                            upstream,
                            tmp,
                            logdir,
                            inline=name == "tollway-inline",
                            stream=name == "tollway-stream",
                            spend=name.startswith("tollway-spend"),
                            redis=name == "tollway-spend-redis",
                        )
                    elif name == "passthrough-stream":
                        server, client = args.passthrough.split("+")
                        target = start_passthrough(name, server, client, upstream, logdir, stream=True)
                    elif name == "tollway-split":
                        binary = tollway_bin(args.tollway_bin)
                        if not binary.exists():
                            row.skipped = f"`{binary}` not found (build the gateway: make venv)"
                            continue
                        target = start_tollway(binary, upstream, tmp, logdir, split=True)
                    elif name == "tollway-weighted":
                        binary = tollway_bin(args.tollway_bin)
                        if not binary.exists():
                            row.skipped = f"`{binary}` not found (build the gateway: make venv)"
                            continue
                        target = start_tollway(binary, upstream, tmp, logdir, weighted=True)
                    elif name == "litellm":
                        target = start_litellm(upstream, tmp, logdir)
                    else:
                        server, client = (args.passthrough if name == "passthrough" else name).split("+")
                        target = start_passthrough(name.replace("+", "-"), server, client, upstream, logdir)
                    if target.proc:
                        procs.append(target.proc)
                    wait_ready(target, 120 if name == "litellm" else 30)
                    row.label = target.label
                    measure(target, tmp, args, row, raw)
                    row.cn[-1].round = rnd
                    if target.database is not None:
                        row.bytes_per_request = stored_bytes_per_request(target.database)
                    log(
                        f"  -> {row.cn[-1].rps:,.0f} req/s at c={args.connections}, "
                        f"p50 {row.c1[-1].p50_ms:.3f} ms at c=1"
                    )
                except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
                    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
                    row.skipped = " / ".join(lines[:1] + lines[-1:])[:300].replace("|", "/")
                    log(f"  FAILED {name}: {exc}")
                finally:
                    for helper in target.helpers if target is not None else []:
                        helper.stop()
                        shutil.copy(helper.logfile, RESULTS / f"{stamp}-{helper.name}.log")
                    if target is not None and target.proc is not None:
                        target.proc.stop()
                        procs.remove(target.proc)
                        # keep the log for the post-mortem
                        shutil.copy(target.proc.logfile, RESULTS / f"{stamp}-{target.proc.name}.log")
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        for p in procs:
            p.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")

    args.loadavg_after = os.getloadavg()[0]
    ordered = [rows[name] for name, _ in plan]
    if args.candidates:
        # order candidates by throughput, direct first
        by_rps = sorted((r for r in ordered if r.name != "direct"), key=lambda r: -(r.rps() if not r.skipped else 0))
        ordered = [rows["direct"], *by_rps]
    tbl = table(ordered, ref, args.connections)
    env_md = environment_notes(args)
    out = f"{env_md}\n{tbl}"
    if not args.candidates:
        out += "\n" + verdicts(ordered, ref)
    print(out)

    (RESULTS / f"{stamp}{'-candidates' if args.candidates else ''}.json").write_text(
        json.dumps(
            {
                "command": args.command,
                "machine": machine_line(),
                "rows": [asdict(r) for r in ordered],
            },
            indent=2,
        )
    )
    (RESULTS / f"{stamp}{'-candidates' if args.candidates else ''}-wrk.txt").write_text("\n".join(raw))
    log(f"raw results in {RESULTS}/{stamp}*")

    if args.write:
        if args.candidates:
            replace_between(DOCS / "decisions.md", CAND_START, CAND_END, out, DECISIONS_SKELETON)
            log("updated docs/decisions.md")
        else:
            replace_between(DOCS / "benchmarks.md", RESULTS_START, RESULTS_END, out, BENCHMARKS_SKELETON)
            log("updated docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
