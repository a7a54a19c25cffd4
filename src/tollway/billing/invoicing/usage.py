"""The usage a rate card prices: its feature's meter slice over a customer's subjects within a time window.

`UsageReader` is the seam rating reads through; `MeteringUsageReader` answers it from meter rollups
(MeteringService.query), so reading a month of usage costs the number of rollup buckets, not of events.
The quantity is the sum of the meter's rows (one per subject and slice): meters billed on are additive
(SUM, COUNT); for MAX or UNIQUE_COUNT it is the sum of the per-subject values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from tollway.billing.features import Feature
from tollway.billing.invoicing.model import UsageSlice
from tollway.metering.aggregation import EXACT, MeterQuery
from tollway.metering.service import MeteringService

# The dimensions a usage line is broken down by on the invoice, when the feature's meter has them.
DEFAULT_SLICE_DIMENSIONS = ("model", "type")


@dataclass(frozen=True)
class MeteredUsage:
    quantity: Decimal
    slices: tuple[UsageSlice, ...] = ()


NO_USAGE = MeteredUsage(Decimal(0))


class UsageReader(Protocol):
    async def read(self, feature: Feature, subjects: Sequence[str], start: datetime, end: datetime) -> MeteredUsage:
        """The feature's quantity for `subjects` over [start, end). No subjects, or an empty window: no usage."""
        ...


class MeteringUsageReader:
    """Reads a feature's usage through the metering service (rollups plus the raw tail)."""

    def __init__(self, metering: MeteringService, slice_dimensions: Sequence[str] = DEFAULT_SLICE_DIMENSIONS) -> None:
        self._metering = metering
        self._slice_dimensions = tuple(slice_dimensions)

    async def read(self, feature: Feature, subjects: Sequence[str], start: datetime, end: datetime) -> MeteredUsage:
        if feature.meter_slug is None or not subjects or start >= end:
            return NO_USAGE
        meter = await self._metering.meter(feature.meter_slug)
        # A dimension the feature pins to one value (type: output) says nothing on the invoice.
        dimensions = tuple(
            name
            for name in self._slice_dimensions
            if name in meter.group_by and len(feature.filters.get(name, ())) != 1
        )
        query = MeterQuery(
            start=start,
            end=end,
            subjects=tuple(subjects),
            group_by=dimensions,
            filter_group_by=dict(feature.filters),
        )
        rows = await self._metering.query(feature.meter_slug, query)
        slices: dict[tuple[str | None, ...], Decimal] = {}
        for row in rows:
            key = tuple(row.group_by.get(name) for name in dimensions)
            slices[key] = EXACT.add(slices.get(key, Decimal(0)), row.value)
        quantity = Decimal(0)
        for value in slices.values():
            quantity = EXACT.add(quantity, value)
        if not dimensions:
            return MeteredUsage(quantity)
        ordered = sorted(slices.items(), key=lambda item: tuple(v or "" for v in item[0]))
        return MeteredUsage(
            quantity,
            tuple(UsageSlice(dict(zip(dimensions, key, strict=True)), value) for key, value in ordered if value),
        )
