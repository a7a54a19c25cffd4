"""`grants:` under a customer in the config file: unit grants on its metered entitlements (OpenMeter's grants),
created once each. A grant is known by its `key` (default: feature and effective time), kept in its metadata
as `tollway_config_key`: applying the same file again creates nothing, and a grant the file changes under the
same key is refused with a line naming it (void it and give the new one another key)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tollway.billing.grants.service import NewUnitGrant, UnitGrantService
from tollway.config.catalog_fields import Strict
from tollway.errors import DomainError
from tollway.metering.events import format_time

if TYPE_CHECKING:
    from tollway.config.schema import TollwayConfig

CONFIG_KEY = "tollway_config_key"


class ExpirationConfig(Strict):
    duration: Literal["HOUR", "DAY", "WEEK", "MONTH", "YEAR"]
    count: int = Field(ge=1)


class RecurrenceConfig(Strict):
    interval: str = Field(min_length=1)
    anchor: datetime | None = None


class UnitGrantConfig(Strict):
    feature: str = Field(min_length=1)
    amount: Decimal = Field(gt=0)
    effective_at: datetime
    priority: int = Field(default=1, ge=1, le=255)
    expiration: ExpirationConfig | None = None
    min_rollover_amount: Decimal = Field(default=Decimal(0), ge=0)
    max_rollover_amount: Decimal | None = Field(default=None, ge=0)
    recurrence: RecurrenceConfig | None = None
    key: str | None = Field(default=None, min_length=1, max_length=200)

    def config_key(self) -> str:
        return self.key or f"{self.feature}@{format_time(self.effective_at)}"

    def grant(self) -> NewUnitGrant:
        return NewUnitGrant(
            amount=self.amount,
            effective_at=self.effective_at,
            priority=self.priority,
            expiration_duration=None if self.expiration is None else self.expiration.duration,
            expiration_count=None if self.expiration is None else self.expiration.count,
            min_rollover=self.min_rollover_amount,
            max_rollover=self.max_rollover_amount,
            recurrence_interval=None if self.recurrence is None else self.recurrence.interval,
            recurrence_anchor=None if self.recurrence is None else self.recurrence.anchor,
            metadata={CONFIG_KEY: self.config_key()},
        )


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
