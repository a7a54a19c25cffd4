"""Rollups: a meter's partial aggregates per UTC bucket (minute, hour, day), subject and dimensions.

Pure functions shared by every adapter. Each stored event that a meter counts adds to one bucket per
level; a query merges buckets into windows. The partials keep enough to merge exactly: count, sum,
min, max, the latest value with its (event time, ingestion sequence), and the first event time.
UNIQUE_COUNT keeps the distinct values themselves (as SHA-256 digests) per bucket, so a range's
distinct count is the size of the union, never a sum of per-window counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from tollway.metering.aggregation import EXACT, aggregated_value, dimension_text, numeric_value
from tollway.metering.events import Event, to_micros
from tollway.metering.jsonpath import compile_path, extract
from tollway.metering.meters import Aggregation, Meter

MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
LEVELS = (DAY_US, HOUR_US, MINUTE_US)  # coarsest first

RollupKey = tuple[int, int, str, str]  # (level_us, bucket_us, subject, dims as a JSON array)
UniqueKey = tuple[int, int, str, str, str]  # RollupKey + the value's digest


@dataclass(slots=True)
class Partial:
    count: int = 0
    total: Decimal = Decimal(0)
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    latest: Decimal | None = None
    latest_us: int | None = None
    latest_seq: int | None = None
    first_us: int | None = None

    def add(self, number: Decimal | None, time_us: int, seq: int) -> None:
        self.count += 1
        if self.first_us is None or time_us < self.first_us:
            self.first_us = time_us
        if number is None:
            return
        self.total = EXACT.add(self.total, number)
        if self.minimum is None or number < self.minimum:
            self.minimum = number
        if self.maximum is None or number > self.maximum:
            self.maximum = number
        if self.latest_us is None or (time_us, seq) >= (self.latest_us, self.latest_seq or 0):
            self.latest, self.latest_us, self.latest_seq = number, time_us, seq

    def merge(self, other: Partial) -> None:
        self.count += other.count
        self.total = EXACT.add(self.total, other.total)
        if other.first_us is not None and (self.first_us is None or other.first_us < self.first_us):
            self.first_us = other.first_us
        if other.minimum is not None and (self.minimum is None or other.minimum < self.minimum):
            self.minimum = other.minimum
        if other.maximum is not None and (self.maximum is None or other.maximum > self.maximum):
            self.maximum = other.maximum
        if other.latest_us is not None and (
            self.latest_us is None or (other.latest_us, other.latest_seq or 0) >= (self.latest_us, self.latest_seq or 0)
        ):
            self.latest, self.latest_us, self.latest_seq = other.latest, other.latest_us, other.latest_seq

    def result(self, aggregation: Aggregation, uniques: int = 0) -> Decimal:
        return aggregated_value(aggregation, self.count, self.total, self.minimum, self.maximum, uniques, self.latest)


def dims_key(values: Iterable[str | None]) -> str:
    return orjson.dumps(list(values)).decode()


def parse_dims(text: str) -> list[str | None]:
    values: list[str | None] = orjson.loads(text)
    return values


def value_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class MeterReader:
    """A meter's compiled paths: reads one event into (usable?, number, unique value, dims)."""

    __slots__ = ("aggregation", "dimension_names", "dimension_steps", "meter", "value_steps")

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.aggregation = meter.aggregation
        self.value_steps = compile_path(meter.value_property) if meter.value_property else None
        self.dimension_names = tuple(meter.group_by)
        self.dimension_steps = tuple(compile_path(path) for path in meter.group_by.values())

    def read(self, data: Any) -> tuple[bool, Decimal | None, str | None, str]:
        """The documented rule: COUNT counts every event; UNIQUE_COUNT needs a scalar value; the
        other aggregations need a number (JSON number or numeric string). An event without one is
        skipped for this meter (and counted by the caller); it never fails the batch."""
        number: Decimal | None = None
        unique: str | None = None
        if self.aggregation is Aggregation.UNIQUE_COUNT:
            assert self.value_steps is not None
            unique = dimension_text(extract(data, self.value_steps))
            if unique is None:
                return False, None, None, ""
        elif self.aggregation is not Aggregation.COUNT:
            assert self.value_steps is not None
            number = numeric_value(extract(data, self.value_steps))
            if number is None:
                return False, None, None, ""
        dims = dims_key(dimension_text(extract(data, steps)) for steps in self.dimension_steps)
        return True, number, unique, dims


@dataclass
class Contribution:
    """What a set of events adds to one meter's rollups."""

    partials: dict[RollupKey, Partial]
    uniques: set[UniqueKey]
    skipped: int = 0


def contribute(meter: Meter, events: Iterable[tuple[Event, int]], levels: tuple[int, ...] = LEVELS) -> Contribution:
    """Partials for `events` (each with its ingestion sequence) of `meter`'s type, at every level."""
    reader = MeterReader(meter)
    partials: dict[RollupKey, Partial] = {}
    uniques: set[UniqueKey] = set()
    skipped = 0
    for event, seq in events:
        if event.type != meter.event_type:
            continue
        usable, number, unique, dims = reader.read(event.data)
        if not usable:
            skipped += 1
            continue
        time_us = to_micros(event.time)
        digest = value_digest(unique) if unique is not None else None
        for level in levels:
            key = (level, time_us - time_us % level, event.subject, dims)
            partial = partials.get(key)
            if partial is None:
                partial = partials[key] = Partial()
            partial.add(number, time_us, seq)
            if digest is not None:
                uniques.add((*key, digest))
    return Contribution(partials, uniques, skipped)


def merge_into(target: dict[RollupKey, Partial], extra: dict[RollupKey, Partial]) -> None:
    """Add `extra`'s partials to `target`'s (same keys merge)."""
    for key, partial in extra.items():
        kept = target.get(key)
        if kept is None:
            target[key] = partial
        else:
            kept.merge(partial)


def partial_from_row(row: Any) -> Partial:
    return Partial(
        count=int(row.count),
        total=Decimal(row.total),
        minimum=None if row.minimum is None else Decimal(row.minimum),
        maximum=None if row.maximum is None else Decimal(row.maximum),
        latest=None if row.latest is None else Decimal(row.latest),
        latest_us=row.latest_us,
        latest_seq=row.latest_seq,
        first_us=row.first_us,
    )


@dataclass(frozen=True, slots=True)
class PartialRow:
    """One stored rollup bucket, as a query reads it."""

    bucket_us: int
    subject: str
    dims: str
    partial: Partial


@dataclass(frozen=True, slots=True)
class UniqueRow:
    bucket_us: int
    subject: str
    dims: str
    digest: str
