"""`tollway`: serve the gateway, manage the database, look at usage."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from tollway import __version__
from tollway.cli.apply import apply_command
from tollway.cli.budgets import budgets_app
from tollway.cli.catalog import features_app, meters_app, plans_app
from tollway.cli.commands import Commands
from tollway.cli.common import database_failures, database_problem, err, fail, load, shown_url
from tollway.cli.credits import credits_app
from tollway.cli.customers import customers_app, subscriptions_app
from tollway.cli.demo import demo_command
from tollway.cli.identity import consumers_app, keys_app
from tollway.cli.importing import import_app
from tollway.cli.invoices import invoices_app
from tollway.cli.notifications import notifications_app
from tollway.cli.rate_limits import rate_limits_app
from tollway.cli.usage import usage
from tollway.config.guard import empty_problems
from tollway.config.schema import TollwayConfig
from tollway.errors import ConfigError
from tollway.settings import Settings

app = Commands(
    name="tollway",
    help="Tollway: a self-hosted AI gateway that meters every LLM token and turns usage into invoices.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = Commands(help="Database schema management.")
app.add_typer(db_app, name="db")
app.add_typer(consumers_app, name="consumers")
app.add_typer(keys_app, name="keys")
app.add_typer(invoices_app, name="invoices")
app.add_typer(import_app, name="import")
app.add_typer(meters_app, name="meters")
app.add_typer(features_app, name="features")
app.add_typer(plans_app, name="plans")
app.add_typer(customers_app, name="customers")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(notifications_app, name="notifications")
app.add_typer(budgets_app, name="budgets")
app.add_typer(rate_limits_app, name="rate-limits")
app.add_typer(credits_app, name="credits")
app.command("apply")(apply_command)
app.command("demo")(demo_command)
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (providers, models, consumers).")
]


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"tollway {__version__}")
        raise typer.Exit()


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address [env TOLLWAY_HOST, default 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env TOLLWAY_PORT, default 8080].")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (each with its own journal; one storage process for all).")
    ] = 1,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
    access_log: Annotated[
        str | None,
        typer.Option(
            "--access-log",
            help="One line per gateway request, 'text' or 'json' (no keys, no prompts)"
            " [env TOLLWAY_ACCESS_LOG, default off; file: TOLLWAY_ACCESS_LOG_FILE, default stderr].",
        ),
    ] = None,
) -> None:
    """Run the gateway and the management API (migrates the database first).

    Example: tollway serve --config examples/quickstart.yaml --port 8080
    """
    from tollway.adapters.sql.engine import create_sql_engine
    from tollway.adapters.sql.migrate import upgrade
    from tollway.cli.connection_guard import guarded_protocol
    from tollway.cli.serving import start_warnings
    from tollway.listening import PortInUse, listen

    if access_log is not None and access_log not in ("off", "text", "json"):
        fail([f"--access-log: expected text, json or off, got {access_log!r}"])
    settings, loaded = load(config, host=host, port=port, log_level=log_level, access_log=access_log)
    if settings.config and not settings.allow_empty_config and (problems := empty_problems(loaded, settings.config)):
        fail(problems)
    level = settings.log_level.lower()
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        engine = create_sql_engine(settings.database_url)
        upgrade(engine)
        engine.dispose()
    except ConfigError as exc:
        fail(exc.problems)
    except database_failures() as exc:
        fail([database_problem(settings.database_url, exc)])
    warnings = start_warnings(settings, loaded)
    if workers > 1 and not settings.redis_url:
        warnings.append(
            f"--workers {workers} without TOLLWAY_REDIS_URL: spend limits (entitlements, budgets) are counted by "
            f"each worker on its own, seeded from the metered usage and raised to it every "
            f"{settings.spend_reconcile_s:g} s, so a limit can be passed by what the other workers admit in between;"
            " set TOLLWAY_REDIS_URL for one count shared by every worker (docs/spend-control.md)"
        )
    for line in warnings:
        err.print(f"[yellow]warning:[/yellow] {line}", highlight=False, soft_wrap=True)
    options: dict[str, Any] = {
        "loop": "uvloop",
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,  # the gateway reads no X-Forwarded-*; the middleware would cost every request
        "log_level": level,
        "lifespan": "on",
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "http": guarded_protocol(settings),  # httptools, plus header and body idle timeouts (connection_guard.py)
    }
    try:
        sock = listen(settings.host, settings.port)
    except PortInUse as exc:
        fail([str(exc)])
    except OSError as exc:
        fail([f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"])
    storage = None
    if settings.ingest == "process":
        # Usage is stored by one supervised child process; the gateway (each worker) only journals it.
        from tollway.cli.storage_process import StorageProcess

        child_env = {**os.environ, "TOLLWAY_LOG_LEVEL": settings.log_level}
        storage = StorageProcess(child_env)
        try:
            storage.start()
        except OSError as exc:
            sock.close()
            fail([f"cannot start the storage process: {exc}"])
        settings = settings.with_overrides(ingest="external")
    try:
        stopped = _serve(settings, loaded, sock, workers, options)
    finally:
        if storage is not None:
            storage.stop()
    if stopped:
        err.print(stopped, highlight=False)


def _serve(
    settings: Settings, loaded: TollwayConfig, sock: socket.socket, workers: int, options: dict[str, Any]
) -> str:
    """Serve until stopped; the line that says what the stop did with pending usage (one process)."""
    import uvicorn

    from tollway.bootstrap import build_app, build_runtime
    from tollway.cli.serving import Server
    from tollway.gateway.multiprocess_metrics import clean as clean_metrics_dir

    banner = (
        f"tollway {__version__} serving on http://{settings.host}:{settings.port} "
        f"({len(loaded.models)} models, {len(loaded.consumers)} consumers, "
        f"database {shown_url(settings.database_url)})"
    )
    if workers > 1:
        sock.close()  # the port is free: uvicorn's supervisor binds it for its workers
        # Each worker builds its own app from the environment (uvicorn imports the factory).
        for name, value in (
            ("CONFIG", settings.config),
            ("HOST", settings.host),
            ("PORT", str(settings.port)),
            ("ACCESS_LOG", settings.access_log),
            ("INGEST", settings.ingest),
        ):
            if value:
                os.environ["TOLLWAY_" + name] = value
        # One /metrics for all workers (prometheus_client's multiprocess mode): each flushes its metrics here,
        # the one scraped reads them all. A directory given is emptied first (an earlier server's counts).
        shared = settings.metrics_dir or tempfile.mkdtemp(prefix="tollway-metrics-")
        clean_metrics_dir(Path(shared))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
        err.print(banner, highlight=False)
        try:
            uvicorn.run(
                "tollway.bootstrap:app_from_env",
                factory=True,
                workers=workers,
                host=settings.host,
                port=settings.port,
                **options,
            )
        finally:
            if not settings.metrics_dir:
                shutil.rmtree(shared, ignore_errors=True)
        return ""
    if settings.metrics_dir:
        clean_metrics_dir(Path(settings.metrics_dir))
    runtime = build_runtime(settings, loaded)
    server = Server(uvicorn.Config(build_app(runtime), **options))
    err.print(banner, highlight=False)
    server.run(sockets=[sock])
    if not server.started:
        raise typer.Exit(3)
    return runtime.stop_report or "tollway stopped"


@app.command()
def worker(
    child: Annotated[
        bool, typer.Option("--child", hidden=True, help="Run as `tollway serve`'s storage process.")
    ] = False,
) -> None:
    """Store the usage that gateways hand over (with TOLLWAY_INGEST=external) or leave behind.

    Reads closed journal segments from TOLLWAY_JOURNAL_DIR and its subdirectories (one per gateway on a
    shared volume), each under a lease so that workers never store one at once, stores their events in
    TOLLWAY_DATABASE_URL and deletes them. Also runs the billing worker (period close, Stripe sync)
    and the notification worker (thresholds, invoice events, webhook deliveries).
    Stops on SIGTERM or Ctrl-C after a last pass.

    Example: TOLLWAY_DATABASE_URL=postgresql://tollway@db/tollway tollway worker
    """
    from tollway.bootstrap import build_worker
    from tollway.runtime.heap import settle_heap

    settings, _ = load(None)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not child:
        err.print(
            f"tollway worker: journal {settings.journal_dir} -> database {shown_url(settings.database_url)}",
            highlight=False,
        )
    if child:
        from tollway.cli.storage_process import yield_cpu

        yield_cpu(settings.storage_nice)  # background work: request serving comes first on a shared core
    try:
        built = build_worker(settings, storage_only=child)
        settle_heap()  # what it built stays out of the garbage collector's full walks (runtime/heap.py)
        asyncio.run(built.run(watch_stdin=child))
    except ConfigError as exc:
        fail(exc.problems)
    except database_failures() as exc:
        fail([database_problem(settings.database_url, exc)])


@app.command()
def check(
    config: Annotated[Path, typer.Argument(help="YAML config file to validate.")],
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty",
            help="Accept a file that defines nothing (refused by default: a truncated file reads as that)"
            " [env TOLLWAY_ALLOW_EMPTY_CONFIG].",
        ),
    ] = False,
) -> None:
    """Validate a config file and print a summary (exit code 2 with one line per problem).

    Runs every check that needs no database, the catalog's included (a feature's filters against its meter's
    dimensions and, for the built-in meters, their values); `tollway apply --dry-run` adds the checks against
    the stored catalog. A file that defines nothing is refused, as `tollway serve` refuses it.

    Example: tollway check examples/quickstart.yaml
    """
    from tollway.billing.apply import offline_problems
    from tollway.config.sync import config_catalog

    settings, loaded = load(config)
    if not (allow_empty or settings.allow_empty_config) and (problems := empty_problems(loaded, str(config))):
        fail(problems)
    if problems := offline_problems(config_catalog(loaded)):
        fail([f"{config}: {line}" for line in problems])
    counts = [
        (len(loaded.providers), "providers"),
        (len(loaded.models), "models"),
        (len(loaded.consumers), "consumers"),
        (len(loaded.meters), "meters"),
        (len(loaded.features), "features"),
        (len(loaded.plans), "plans"),
        (len(loaded.customers), "customers"),
    ]
    typer.echo(f"{config}: ok ({', '.join(f'{n} {what}' for n, what in counts)})")


@app.command("stripe-standin")
def stripe_standin(
    host: Annotated[str, typer.Option(help="Bind address (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 12111,
) -> None:
    """Serve the local Stripe stand-in (a development tool: in memory, nothing is charged) until Ctrl-C.

    It answers the Stripe calls Tollway makes (customers, invoices, invoice items, finalize, void, pay out of
    band) and prints one line per request. Point a Tollway at it with the two variables it prints; list what
    reached it with `curl -u sk_test_local: http://127.0.0.1:12111/v1/invoices`.

    Example: tollway stripe-standin --port 12111
    """
    import signal
    import threading

    from tollway.demo.stripe_standin import StripeStandIn

    try:
        standin = StripeStandIn(host, port)
    except OSError as exc:
        fail([f"cannot listen on {host}:{port}: {exc.strerror or exc}"])
    standin.log = lambda line: typer.echo(line)
    standin.start()
    typer.echo(f"Stripe stand-in on {standin.origin} (development only: in memory, nothing is charged)")
    typer.echo(f"  export TOLLWAY_STRIPE_SECRET_KEY=sk_test_local TOLLWAY_STRIPE_API_BASE={standin.origin}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations (TOLLWAY_DATABASE_URL).

    Example: TOLLWAY_DATABASE_URL=sqlite:///./tollway.db tollway db upgrade
    """
    from tollway.adapters.sql.engine import create_sql_engine
    from tollway.adapters.sql.migrate import current_revision, upgrade

    settings, _ = load(None)
    try:
        engine = create_sql_engine(settings.database_url)
        upgrade(engine, revision)
        typer.echo(f"database at revision {current_revision(engine)}")
        engine.dispose()
    except ConfigError as exc:
        fail(exc.problems)
    except database_failures() as exc:
        fail([database_problem(settings.database_url, exc)])


app.command()(usage)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
