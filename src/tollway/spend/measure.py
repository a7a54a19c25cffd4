"""How much of a limit one call uses, read the way its meter reads the call's usage events (pure).

A limit on a feature counts the feature's meter slice: the call's events (`llm_call_events`, the very
events metering stores) aggregated by the meter with the feature's filters. So a reservation priced
from a worst-case call and a settlement from the real call count exactly what the event store will
count for them, whatever the meter (tokens of one type, requests, provider cost, a custom meter over
`llm.tokens`). Only additive meters (SUM, COUNT) can be limited: the others have no running total.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from tollway.metering.aggregation import dimension_text, numeric_value
from tollway.metering.events import Event
from tollway.metering.jsonpath import compile_path, extract
from tollway.metering.meters import Aggregation, Meter

ADDITIVE = frozenset({Aggregation.SUM, Aggregation.COUNT})
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class FeatureMeasure:
    """A meter narrowed by filters, compiled once: the amount a call's events add to it."""

    meter: Meter
    filters: Mapping[str, frozenset[str]]
    _value: tuple[str | int, ...] | None
    _dimensions: tuple[tuple[tuple[str | int, ...], frozenset[str]], ...]

    @classmethod
    def of(cls, meter: Meter, filters: Mapping[str, Sequence[str]]) -> FeatureMeasure:
        if meter.aggregation not in ADDITIVE:
            raise ValueError(
                f"meter {meter.slug} aggregates with {meter.aggregation}: only SUM and COUNT can be limited"
            )
        value = compile_path(meter.value_property) if meter.value_property else None
        allowed = {name: frozenset(values) for name, values in filters.items()}
        unknown = sorted(set(allowed) - set(meter.group_by))
        if unknown:
            raise ValueError(f"meter {meter.slug} has no dimension {unknown[0]!r} to filter on")
        dimensions = tuple((compile_path(meter.group_by[name]), values) for name, values in allowed.items())
        return cls(meter, allowed, value, dimensions)

    def amount(self, events: Sequence[Event]) -> Decimal:
        """What `events` add to the meter slice (events of other types, or outside the filters, add nothing)."""
        total = _ZERO
        for event in events:
            if event.type != self.meter.event_type:
                continue
            if any(dimension_text(extract(event.data, path)) not in allowed for path, allowed in self._dimensions):
                continue
            if self.meter.aggregation is Aggregation.COUNT:
                total += 1
                continue
            assert self._value is not None
            number = numeric_value(extract(event.data, self._value))
            if number is not None:
                total += number
        return total
