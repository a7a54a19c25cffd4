"""The one Settings object. Environment variables are read here and nowhere else."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from tollway.errors import ConfigError

ENV_PREFIX = "TOLLWAY_"
INGEST_MODES = ("process", "inline", "external")
ACCESS_LOG_MODES = ("off", "text", "json")
API_DOCS_MODES = ("admin", "open", "off")
NO_SUBSCRIPTION_MODES = ("allow", "refuse")
OTEL_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class Settings:
    """Process settings. Each field `x` is read from the environment variable `TOLLWAY_X`."""

    config: str | None = None
    # accept a config file that defines nothing, and reloads that remove every provider, model or consumer
    # (refused by default: a truncated file reads as that; tollway.config.guard)
    allow_empty_config: bool = False
    database_url: str = "sqlite:///./tollway.db"
    redis_url: str | None = None
    admin_token: str | None = None
    # signs the dashboard's session cookies and CSRF tokens; unset: a random secret per process (sessions end with
    # the process and are not shared by several workers: set it when serving with more than one)
    dashboard_secret: str | None = None
    api_docs: str = "admin"  # admin | open | off: who may read /openapi.json, /docs and /redoc
    metrics_token: str | None = None  # when set, /metrics answers only `Authorization: Bearer <token>`
    # PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode; TOLLWAY_METRICS_DIR is read too): where each
    # worker flushes its metrics for one /metrics of the whole server; serve --workers N sets a fresh one
    metrics_dir: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    journal_dir: str = "./.tollway/journal"
    max_body_bytes: int = 20 * 1024 * 1024
    max_buffered_response_bytes: int = 8 * 1024 * 1024
    # process: `tollway serve` stores usage in a storage process it starts and supervises (an app built in
    # process, as tests and the demo do, stores inline); inline: the gateway stores usage itself (slower: the
    # database runs on the request process); external: a `tollway worker` started apart does
    ingest: str = "process"
    # the storage process's niceness (0-19): it yields the CPU to request serving on a shared core (0: no change)
    storage_nice: int = 10
    # raw events kept this long ("90d", "36h"; empty: forever); rollups are kept (metering/retention.py)
    events_retention: str = ""
    flush_interval_s: float = 0.25
    flush_batch_size: int = 2000
    # usage older than this and not yet stored: a warning once a minute (tollway_usage_backlog_age_seconds)
    usage_backlog_alert_s: float = 300.0
    # inline ingest: past this many unstored events (an outage) none are kept in memory, the journal holds them
    inline_max_backlog_events: int = 200_000
    drain_timeout_s: float = 60.0
    upstream_timeout_s: float = 600.0
    shutdown_grace_s: float = 30.0  # on SIGTERM, how long requests in flight may finish before they are cut
    # slow clients (tollway serve): the request line and headers must arrive within header_timeout_s, a body
    # may pause at most idle_timeout_s, an idle keep-alive connection is closed after keep_alive_timeout_s
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    keep_alive_timeout_s: float = 5.0
    max_header_bytes: int = 64 * 1024  # request line and headers; larger: 431
    log_level: str = "warning"
    access_log: str = "off"  # off | text | json: one line per gateway request
    access_log_file: str | None = None  # default: standard error
    stripe_secret_key: str | None = None  # Stripe sync is on when set; issuing then enqueues the invoice for Stripe
    stripe_api_base: str = "https://api.stripe.com"
    stripe_webhook_secret: str | None = None  # the webhook endpoint's signing secret (whsec_...)
    seller_name: str = "Tollway"
    seller_address: str = ""
    seller_email: str = ""
    invoice_grace_s: float = 3600.0  # a billing period is invoiced this long after it ends (late usage lands)
    invoice_auto_issue: bool = True  # the period closer issues the invoices it creates (false: drafts)
    invoice_due_days: int = 30  # due date = issue date + this many days
    invoice_lookback_days: int = 90  # late usage re-rates issued invoices whose period ended this recently
    billing_worker: bool = True  # `tollway serve` runs the billing worker (period close, Stripe sync)
    billing_interval_s: float = 30.0  # how often the billing worker looks for work
    notifications: bool = True  # invoice changes notify; the notification worker runs beside the billing worker
    webhook_allow_private: bool = False  # webhooks may reach loopback/private addresses, and http:// (tests, LANs)
    notification_interval_s: float = 1.0  # how often due webhook deliveries are looked for
    balance_interval_s: float = 2.0  # how often threshold, reset, budget, credit, invoice, subscription events are seen
    notification_lease_s: float = 60.0  # a claimed delivery comes back due this long after its worker died
    # failed authentications (consumer keys, admin token) per client address per minute before it gets 429s; 0: off
    auth_failure_limit: int = 60
    # spend control (docs/spend-control.md): calls of a customer without an active subscription (allow | refuse)
    spend_no_subscription: str = "allow"
    spend_default_max_tokens: int = 4096  # output tokens reserved for a request that sets no max_tokens
    spend_refresh_s: float = 1.0  # how often the gateway looks for catalog changes (limits, subscriptions)
    spend_reconcile_s: float = 30.0  # how often counters are raised to the metered usage
    routing_redis_prefix: str = "tollway:routing:"  # breaker moves and cool-downs shared in TOLLWAY_REDIS_URL
    spend_redis_prefix: str = "tollway:spend:"  # key prefix of the counters in TOLLWAY_REDIS_URL
    spend_redis_timeout_s: float = 0.25  # the longest a request waits for Redis
    spend_redis_failure: str = "closed"  # Redis unreachable or slow: closed = refuse (503), open = admit unchecked
    # OpenTelemetry traces and GenAI metrics (docs/observability.md): on | off | auto (on when
    # OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, unless OTEL_SDK_DISABLED=true)
    otel: str = "auto"
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from `environ` (default: the process environment) plus explicit overrides."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            if f.name == "env":
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = _coerce(f.name, raw, f.type)
            except ValueError as exc:
                problems.append(f"{ENV_PREFIX}{f.name.upper()}: {exc}")
        if values.get("spend_no_subscription", "allow") not in NO_SUBSCRIPTION_MODES:
            problems.append(
                f"{ENV_PREFIX}SPEND_NO_SUBSCRIPTION: expected one of {', '.join(NO_SUBSCRIPTION_MODES)}, "
                f"got {values['spend_no_subscription']!r}"
            )
        if values.get("spend_redis_failure", "closed") not in ("open", "closed"):
            problems.append(
                f"{ENV_PREFIX}SPEND_REDIS_FAILURE: expected one of open, closed, got {values['spend_redis_failure']!r}"
            )
        if values.get("otel", "auto") not in OTEL_MODES:
            problems.append(f"{ENV_PREFIX}OTEL: expected one of {', '.join(OTEL_MODES)}, got {values['otel']!r}")
        if not 0 <= values.get("storage_nice", 10) <= 19:
            problems.append(f"{ENV_PREFIX}STORAGE_NICE: expected 0 to 19, got {values['storage_nice']}")
        if values.get("ingest", "process") not in INGEST_MODES:
            problems.append(f"{ENV_PREFIX}INGEST: expected one of {', '.join(INGEST_MODES)}, got {values['ingest']!r}")
        if values.get("access_log", "off") not in ACCESS_LOG_MODES:
            problems.append(
                f"{ENV_PREFIX}ACCESS_LOG: expected one of {', '.join(ACCESS_LOG_MODES)}, got {values['access_log']!r}"
            )
        if values.get("api_docs", "admin") not in API_DOCS_MODES:
            problems.append(
                f"{ENV_PREFIX}API_DOCS: expected one of {', '.join(API_DOCS_MODES)}, got {values['api_docs']!r}"
            )
        problems.extend(_duration_problems(values))
        try:
            parse_retention(values.get("events_retention", ""))
        except ValueError as exc:
            problems.append(f"{ENV_PREFIX}EVENTS_RETENTION: {exc}")
        if problems:
            raise ConfigError(problems)
        if "metrics_dir" not in values and env.get("PROMETHEUS_MULTIPROC_DIR"):
            values["metrics_dir"] = env["PROMETHEUS_MULTIPROC_DIR"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(env=env, **values)

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def tracing(self) -> bool:
        """Whether OpenTelemetry is on (TOLLWAY_OTEL; auto: when an OTLP endpoint is configured)."""
        if self.otel != "auto":
            return self.otel == "on"
        if self.env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return False
        return bool(self.env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or self.env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))

    @property
    def journal_path(self) -> Path:
        return Path(self.journal_dir)

    @property
    def events_retention_period(self) -> timedelta | None:
        """TOLLWAY_EVENTS_RETENTION as a period; None: keep raw events forever."""
        return parse_retention(self.events_retention)


def parse_retention(text: str) -> timedelta | None:
    """ "90d" (days) or "36h" (hours); "" or "0": None (no retention). ValueError otherwise."""
    if not text.strip():
        return None
    found = re.fullmatch(r"\s*(\d{1,6})\s*([dh]?)\s*", text.lower())
    if found is None:
        raise ValueError(f"expected a number of days like 90d (or hours like 36h), got {text!r}")
    amount = int(found.group(1))
    if amount == 0:
        return None
    return timedelta(hours=amount) if found.group(2) == "h" else timedelta(days=amount)


MAX_SECONDS = 10 * 366 * 86_400  # every *_S setting: at most about ten years
MAX_DAYS = 100 * 366  # every *_DAYS setting: at most about a hundred years


def _duration_problems(values: Mapping[str, Any]) -> list[str]:
    """Durations are bounded before any timedelta or timer is made of them (1e300 seconds overflows one)."""
    problems = []
    for name, value in values.items():
        bound = MAX_SECONDS if name.endswith("_s") else MAX_DAYS if name.endswith("_days") else None
        if bound is not None and not (math.isfinite(value) and 0 <= value <= bound):
            problems.append(f"{ENV_PREFIX}{name.upper()}: expected a number from 0 to {bound}, got {value!r}")
    return problems


def _coerce(name: str, raw: str, annotation: object) -> Any:
    kind = str(annotation)
    if kind in ("int", "float") and not raw.isascii():  # int() and float() read Arabic-Indic and other digits
        raise ValueError(f"expected ASCII digits, got {raw!r}")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"expected true/false, got {raw!r}")
    return raw
