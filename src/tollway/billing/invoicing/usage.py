"""The usage a rate card prices: its feature's meter slice over a customer's subjects within a time window.

`UsageReader` is the seam rating reads through; `MeteringUsageReader` answers it from meter rollups
(MeteringService.query), so reading a month of usage costs the number of rollup buckets, not of events.
The quantity is the sum of the meter's rows (one per subject and slice): meters billed on are additive
(SUM, COUNT); for MAX or UNIQUE_COUNT it is the sum of the per-subject values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from tollway.billing.features import Feature
from tollway.billing.invoicing.model import UsageSlice
from tollway.metering.aggregation import EXACT, MeterQuery, QueryRow
from tollway.metering.meters import Aggregation
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


@dataclass(frozen=True)
class UsageRequest:
    feature: Feature
    subjects: tuple[str, ...]
    start: datetime
    end: datetime


@runtime_checkable
class BatchUsageReader(UsageReader, Protocol):
    async def read_many(self, requests: Sequence[UsageRequest]) -> list[MeteredUsage]:
        """`read` for each request, in order; features on one meter and window may share one read."""
        ...


async def read_usages(reader: UsageReader, requests: Sequence[UsageRequest]) -> list[MeteredUsage]:
    """Each request's usage: in one batch when the reader can, else one `read` each."""
    if isinstance(reader, BatchUsageReader):
        return await reader.read_many(requests)
    return [await reader.read(r.feature, r.subjects, r.start, r.end) for r in requests]


class MeteringUsageReader:
    """Reads a feature's usage through the metering service (rollups plus the raw tail)."""

    def __init__(self, metering: MeteringService, slice_dimensions: Sequence[str] = DEFAULT_SLICE_DIMENSIONS) -> None:
        self._metering = metering
        self._slice_dimensions = tuple(slice_dimensions)

    async def read(self, feature: Feature, subjects: Sequence[str], start: datetime, end: datetime) -> MeteredUsage:
        return (await self.read_many([UsageRequest(feature, tuple(subjects), start, end)]))[0]

    async def read_many(self, requests: Sequence[UsageRequest]) -> list[MeteredUsage]:
        """Features over one additive meter (SUM, COUNT), subjects and window share ONE meter query,
        grouped by every dimension any of them filters or slices on, and are sliced here: the input-
        and output-token rate cards of a preview read llm_tokens once."""
        found: list[MeteredUsage] = [NO_USAGE] * len(requests)
        shared: dict[tuple[str, tuple[str, ...], datetime, datetime], list[int]] = {}
        for index, request in enumerate(requests):
            slug = request.feature.meter_slug
            if slug is not None and request.subjects and request.start < request.end:
                shared.setdefault((slug, request.subjects, request.start, request.end), []).append(index)
        # Each meter's read is independent of the others': concurrently.
        await asyncio.gather(*(self._read_shared(requests, found, key, indexes) for key, indexes in shared.items()))
        return found

    async def _read_shared(
        self,
        requests: Sequence[UsageRequest],
        found: list[MeteredUsage],
        key: tuple[str, tuple[str, ...], datetime, datetime],
        indexes: list[int],
    ) -> None:
        slug, subjects, start, end = key
        meter = await self._metering.meter(slug)
        dimensions = {index: self._dimensions(requests[index].feature, meter.group_by) for index in indexes}
        additive = meter.aggregation in (Aggregation.SUM, Aggregation.COUNT)
        known = all(name in meter.group_by for index in indexes for name in requests[index].feature.filters)
        if not additive or not known or len(indexes) == 1:
            for index in indexes:  # not additive over finer groups: each feature's own query
                feature = requests[index].feature
                query = MeterQuery(
                    start=start,
                    end=end,
                    subjects=subjects,
                    group_by=dimensions[index],
                    filter_group_by=dict(feature.filters),
                )
                rows = await self._metering.query(slug, query)
                found[index] = _usage(rows, feature, dimensions[index])
            return
        names = {name for index in indexes for name in (*dimensions[index], *requests[index].feature.filters)}
        query = MeterQuery(
            start=start,
            end=end,
            subjects=subjects,
            group_by=tuple(name for name in meter.group_by if name in names),
        )
        rows = await self._metering.query(slug, query)
        for index in indexes:
            found[index] = _usage(rows, requests[index].feature, dimensions[index])

    def _dimensions(self, feature: Feature, group_by: Collection[str]) -> tuple[str, ...]:
        # A dimension the feature pins to one value (type: output) says nothing on the invoice.
        return tuple(
            name for name in self._slice_dimensions if name in group_by and len(feature.filters.get(name, ())) != 1
        )


def _usage(rows: Sequence[QueryRow], feature: Feature, dimensions: tuple[str, ...]) -> MeteredUsage:
    """The feature's rows summed into its slices; a shared read was not filtered: its filters apply here."""
    slices: dict[tuple[str | None, ...], Decimal] = {}
    for row in rows:
        if any(row.group_by[name] not in allowed for name, allowed in feature.filters.items() if name in row.group_by):
            continue
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
