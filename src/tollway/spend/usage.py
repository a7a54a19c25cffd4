"""The metered usage a counter is seeded and reconciled from: a feature's slice over a customer's subjects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from tollway.metering.aggregation import MeterQuery
from tollway.metering.meters import Meter
from tollway.metering.running_totals import Filters, RunningTotals
from tollway.metering.service import MeteringService


class UsageReader(Protocol):
    async def usage(
        self, meter: Meter, subjects: Sequence[str], filters: Filters, start: datetime, at: datetime
    ) -> Decimal: ...


class MeteredUsage:
    """From the event store: a running total (kept rollup snapshot + recent events), else a meter query."""

    def __init__(self, metering: MeteringService, running_totals: RunningTotals) -> None:
        self._metering = metering
        self._totals = running_totals

    async def usage(
        self, meter: Meter, subjects: Sequence[str], filters: Filters, start: datetime, at: datetime
    ) -> Decimal:
        if not subjects or start >= at:
            return Decimal(0)
        total = await self._totals.total(meter, subjects, filters, start, at)
        if total is not None:
            return total
        rows = await self._metering.query(
            meter.slug, MeterQuery(start=start, end=at, subjects=tuple(subjects), filter_group_by=dict(filters))
        )
        return sum((row.value for row in rows), Decimal(0))
