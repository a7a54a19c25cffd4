"""The config file's catalog, budgets, credits and notifications made what the stores hold, at start and on each
reload (the gateway's own state from the file is `tollway.wiring.gateway`'s)."""

from __future__ import annotations

import logging

from tollway.billing.catalog import Catalog
from tollway.billing.catalog.unit_grant_service import UnitGrantService
from tollway.billing.credit_accounts.service import CreditService
from tollway.clock import Clock
from tollway.config.schema import TollwayConfig
from tollway.config.sync import apply_config_credits, apply_config_unit_grants
from tollway.errors import ConfigError, DomainError
from tollway.metering.service import MeteringService
from tollway.notifications.service import NotificationService
from tollway.spend.budgets_service import BudgetService
from tollway.wiring.notifications import apply_config_notifications

log = logging.getLogger("tollway")


def defines_catalog(config: TollwayConfig) -> bool:
    return bool({"features", "plans", "customers"} & config.model_fields_set)


async def catalog_problems(
    config: TollwayConfig, catalog: Catalog, metering: MeteringService, clock: Clock
) -> list[str]:
    """What forbids applying the file's catalog (checked against the store; nothing written)."""
    if not defines_catalog(config):
        return []
    from tollway.billing.apply import load_stored, plan_apply
    from tollway.config.sync import config_catalog

    stored = await load_stored(catalog, metering)
    return list(plan_apply(config_catalog(config), stored, clock.now()).problems)


async def apply_catalog(config: TollwayConfig, catalog: Catalog, metering: MeteringService, clock: Clock) -> None:
    """Make the stored catalog what the file says (tollway.billing.apply); ConfigError, one line per problem.

    A file without features, plans or customers leaves the stored catalog alone (`tollway apply` manages it).
    """
    if not defines_catalog(config):
        return
    from tollway.billing.apply import ApplyFailed
    from tollway.billing.apply import apply_catalog as apply_desired
    from tollway.config.sync import config_catalog

    desired = config_catalog(config)
    for attempt in (1, 2):
        try:
            plan = await apply_desired(desired, catalog, metering, clock.now())
        except ApplyFailed as exc:
            if attempt == 2:
                raise ConfigError([f"catalog: {exc}"]) from exc
            continue  # another process applying the same file at once: plan again against what it wrote
        if plan.problems:  # logged by the caller (start: the lifespan; reload: one line each)
            raise ConfigError([f"catalog: {line}" for line in plan.problems])
        for line in (*plan.notes, *plan.lines):
            log.info("catalog: %s", line)
        return


async def apply_notifications(notifications: NotificationService | None, config: TollwayConfig) -> None:
    """The file's `notifications:` channels and rules, created or updated by name."""
    if notifications is not None:
        await notifications.publish_secrets()
        for line in await apply_config_notifications(notifications, config.notifications):
            log.info("notifications: %s", line)


async def apply_budgets(budgets: BudgetService | None, config: TollwayConfig) -> None:
    """Make the config-managed budgets and rate limits what the file's `budgets:` and `rate_limits:` say (a file
    without the section leaves them alone); ConfigError on a conflict with one made through the API."""
    if budgets is None:
        return
    try:
        lines = []
        if "budgets" in config.model_fields_set:
            lines += await budgets.sync_config([b.budget() for b in config.budgets])
        if "rate_limits" in config.model_fields_set:
            lines += await budgets.rate_limits.sync_config([r.rate_limit() for r in config.rate_limits])
    except DomainError as exc:
        raise ConfigError([f"budgets: {exc.message}"]) from exc
    for line in lines:
        log.info("budgets: %s", line)


async def apply_credits(
    credits: CreditService | None, unit_grants: UnitGrantService | None, config: TollwayConfig
) -> None:
    """Each customer's `credits:` grants, created once (by key); ConfigError naming a changed one."""
    if credits is None:
        return
    changes, problems = await apply_config_credits(credits, config)
    if unit_grants is not None:
        more, unit_problems = await apply_config_unit_grants(unit_grants, config)
        changes, problems = changes + more, problems + unit_problems
    for line in changes:
        log.info("credits: %s", line)
    if problems:
        raise ConfigError(problems)
