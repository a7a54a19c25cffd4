"""`grants:` under a customer in the config file: unit grants on its metered entitlements (OpenMeter's grants),
created once each. A grant is known by its `key` (default: feature and effective time), kept in its metadata
as `tollway_config_key`: applying the same file again creates nothing, and a grant the file changes under the
same key is refused with a line naming it (void it and give the new one another key)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from tollway.billing.catalog.unit_grant_service import NewUnitGrant
from tollway.config.catalog_fields import Strict
from tollway.metering.events import format_time

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
