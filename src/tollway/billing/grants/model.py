"""A unit grant adds to a customer's metered entitlement of one feature (OpenMeter's grant): `amount` units,
from `effective_at`, until `expires_at` (effective + expiration count x duration), re-issued at each
`recurrence` (its balance back to `amount`), rolled over at each usage period reset as
MIN(maxRolloverAmount, MAX(balance before the reset, minRolloverAmount))."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

EXPIRATION_UNITS = {"HOUR": "PT{n}H", "DAY": "P{n}D", "WEEK": "P{n}W", "MONTH": "P{n}M", "YEAR": "P{n}Y"}
RECURRENCE_INTERVALS = {"DAY": "P1D", "WEEK": "P1W", "MONTH": "P1M", "YEAR": "P1Y"}


@dataclass(frozen=True)
class UnitGrant:
    id: str
    customer_id: str
    feature_key: str
    amount: Decimal
    priority: int  # 1-255, lower burns first
    effective_at: datetime
    created_at: datetime
    expiration_duration: str | None = None  # HOUR | DAY | WEEK | MONTH | YEAR
    expiration_count: int | None = None
    expires_at: datetime | None = None
    min_rollover: Decimal = Decimal(0)
    max_rollover: Decimal | None = None  # None: the amount
    recurrence_interval: str | None = None  # ISO-8601 (P1M); OpenMeter's DAY/WEEK/MONTH/YEAR are stored as such
    recurrence_anchor: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    voided_at: datetime | None = None

    @property
    def rollover_cap(self) -> Decimal:
        return self.amount if self.max_rollover is None else self.max_rollover

    def active_at(self, at: datetime) -> bool:
        return (
            self.effective_at <= at
            and (self.expires_at is None or at < self.expires_at)
            and (self.voided_at is None or at < self.voided_at)
        )
