"""What the config file makes the stores hold, read from the whole file (`TollwayConfig`): the catalog it
describes (meters, features, plans, customers) and each customer's credit and unit grants, created once each.

The sections' own models (catalog.py, credits.py, unit_grants.py) know nothing of the whole file, so that the
schema (schema.py) can import them and nothing imports the schema back."""

from __future__ import annotations

from dataclasses import replace

from tollway.billing.apply import DesiredCatalog
from tollway.billing.catalog.unit_grant_service import UnitGrantService
from tollway.billing.credit_accounts.service import CreditService
from tollway.config.catalog import desired_catalog
from tollway.config.schema import TollwayConfig
from tollway.config.unit_grants import CONFIG_KEY
from tollway.errors import ConflictError, DomainError


def config_catalog(config: TollwayConfig) -> DesiredCatalog:
    """Everything `tollway apply` and `serve` make the store hold: the built-in and config meters, then the
    file's features, plans and customers."""
    from tollway.metering.meters import BUILT_IN_METERS, Meter

    meters = (*BUILT_IN_METERS, *(Meter.from_record(m.record()) for m in config.meters))
    return replace(desired_catalog(config.features, config.plans, config.customers), meters=meters)


async def apply_config_credits(service: CreditService, config: TollwayConfig) -> tuple[list[str], list[str]]:
    """(changes, problems): each customer's `credits:` grants created unless their key exists."""
    changes: list[str] = []
    problems: list[str] = []
    for customer in config.customers:
        for n, entry in enumerate(customer.credits):
            path = f"customers.{customer.key}.credits[{n}]"
            try:
                grant, created = await service.create(customer.key, entry.grant())
            except ConflictError:
                problems.append(
                    f"{path}: a grant under key {entry.key or entry.name!r} exists with other values (a grant cannot "
                    "change: void it and give the new one another key)"
                )
                continue
            except DomainError as exc:
                problems.append(f"{path}: {exc.message}")
                continue
            if created:
                changes.append(f"customer {customer.key}: credit grant {grant.name!r} ({grant.id}) created")
    return changes, problems


async def apply_config_unit_grants(service: UnitGrantService, config: TollwayConfig) -> tuple[list[str], list[str]]:
    """(changes, problems): each customer's `grants:` created unless one with its key exists."""
    changes: list[str] = []
    problems: list[str] = []
    for customer in config.customers:
        for n, entry in enumerate(customer.grants):
            path = f"customers.{customer.key}.grants[{n}]"
            wanted = entry.grant()
            try:
                existing = [
                    g
                    for g in await service.list(customer.key, entry.feature)
                    if g.metadata.get(CONFIG_KEY) == entry.config_key()
                ]
                if existing:
                    same = existing[0]
                    if (same.amount, same.effective_at, same.priority) != (
                        wanted.amount,
                        wanted.effective_at,
                        wanted.priority,
                    ):
                        problems.append(
                            f"{path}: a grant under key {entry.config_key()!r} exists with other values (a grant "
                            "cannot change: void it and give the new one another key)"
                        )
                    continue
                grant = await service.create(customer.key, entry.feature, wanted)
            except DomainError as exc:
                problems.append(f"{path}: {exc.message}")
                continue
            changes.append(f"customer {customer.key}: grant of {grant.amount} {entry.feature} ({grant.id}) created")
    return changes, problems
