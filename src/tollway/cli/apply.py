"""`tollway apply FILE`: make the database's catalog (meters, features, plans, customers, subscriptions) what
the config file says, idempotently, printing each change like a terraform plan."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tollway.cli.common import database_problem, fail, load, shown_url

if TYPE_CHECKING:
    from tollway.billing.apply import ApplyPlan


def apply_command(
    file: Annotated[Path, typer.Argument(help="YAML config file whose catalog to apply.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the changes without making them.")] = False,
    create: Annotated[
        bool,
        typer.Option(
            "--create",
            help="Create the SQLite database file if it does not exist (needed only when TOLLWAY_DATABASE_URL"
            " is not set: the default ./tollway.db may not be the database your server reads).",
        ),
    ] = False,
) -> None:
    """Apply the file's catalog to TOLLWAY_DATABASE_URL: print the database, each change, then make them.

    Everything is checked first (the file, then against the stored catalog); on any problem each is printed,
    nothing changes and the exit code is 2. A second apply of the same file prints "No changes."
    A customer field the file leaves out (the Stripe customer id the sync records) is never changed.
    A dry run against a SQLite file that does not exist plans against an empty store and creates no file.
    Without TOLLWAY_DATABASE_URL, a SQLite file that does not exist yet is created only with --create.

    Example: TOLLWAY_DATABASE_URL=sqlite:///./tollway.db tollway apply examples/quickstart.yaml
    """
    from tollway.adapters.sql.engine import missing_sqlite_file
    from tollway.billing.apply import ApplyFailed, StoredCatalog, execute, load_stored, plan_apply
    from tollway.clock import SystemClock
    from tollway.config.sync import apply_config_credits, apply_config_unit_grants, config_catalog
    from tollway.errors import ConfigError, DomainError
    from tollway.wiring.services import build_services

    settings, config = load(file)
    desired = config_catalog(config)

    missing = missing_sqlite_file(settings.database_url)
    explicit = bool(settings.env.get("TOLLWAY_DATABASE_URL"))
    if missing is not None and not dry_run and not create and not explicit:
        fail(
            [
                f"no database at {missing.resolve()}: TOLLWAY_DATABASE_URL is not set, so this would create a new"
                " SQLite file that your server may not read. Set TOLLWAY_DATABASE_URL to the server's database,"
                " or pass --create to make this one"
            ]
        )
    typer.echo(f"database: {shown_url(settings.database_url)}")
    if not dry_run:
        missing = None

    async def run() -> tuple[ApplyPlan, ApplyFailed | None]:
        if missing is not None:  # nothing stored yet: everything is a create, and no file is made
            typer.echo(f"note: no database at {missing} yet: planned against an empty one")
            return plan_apply(desired, StoredCatalog(), SystemClock().now()), None
        services = build_services(settings)
        try:
            await services.open()
            now = services.clock.now()
            plan = plan_apply(desired, await load_stored(services.catalog, services.metering), now)
            if plan.problems or dry_run:
                return plan, None
            _show(plan)
            try:
                await execute(plan, services.catalog, services.metering, now)
            except ApplyFailed as exc:
                return plan, exc
            if "budgets" in config.model_fields_set:
                for line in await services.budgets.sync_config([b.budget() for b in config.budgets]):
                    typer.echo(line)
            if "rate_limits" in config.model_fields_set:
                rates = [r.rate_limit() for r in config.rate_limits]
                for line in await services.budgets.rate_limits.sync_config(rates):
                    typer.echo(line)
            changes, problems = await apply_config_credits(services.credits, config)
            more, unit_problems = await apply_config_unit_grants(services.unit_grants, config)
            changes, problems = changes + more, problems + unit_problems
            for line in changes:
                typer.echo(line)
            if problems:
                raise ConfigError([f"{file}: {line}" for line in problems])
            return plan, None
        finally:
            await services.close()

    try:
        plan, failed = asyncio.run(run())
    except ConfigError as exc:
        fail(exc.problems)
    except DomainError as exc:
        fail([exc.message])
    except Exception as exc:
        fail([database_problem(settings.database_url, exc)])
    if plan.problems:
        fail([f"{file}: {line}" for line in plan.problems])
    if failed is not None:
        fail([str(failed)], code=1)
    if dry_run:
        _show(plan)
        typer.echo("(dry run: nothing changed)")


def _show(plan: ApplyPlan) -> None:
    for line in (*plan.notes, *plan.lines, plan.summary):
        typer.echo(line)
