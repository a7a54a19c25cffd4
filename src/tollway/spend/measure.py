"""How much of a limit one call uses, read the way its meter reads the call's usage events (pure).

A limit on a feature counts the feature's meter slice: the call's events (`llm_call_events`, the very
events metering stores) aggregated by the meter with the feature's filters. So a reservation priced
from a worst-case call and a settlement from the real call count exactly what the event store will
count for them, whatever the meter (tokens of one type, requests, provider cost, a custom meter over
`llm.tokens`). Only additive meters (SUM, COUNT) can be limited: the others have no running total.

The built-in meters (`llm_tokens`, `llm_requests`, `llm_cost`) filtered on their own dimensions are read
straight from the call's record (the same numbers its events carry, without building them); any other meter
or filter goes through the events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from tollway.metering.aggregation import dimension_text, numeric_value
from tollway.metering.events import Event
from tollway.metering.jsonpath import compile_path, extract
from tollway.metering.llm import LlmCall, llm_call_events
from tollway.metering.meters import BUILT_IN_METERS, Aggregation, Meter

ADDITIVE = frozenset({Aggregation.SUM, Aggregation.COUNT})
_ZERO = Decimal(0)
_ONE = Decimal(1)
_TOKEN_TYPES = ("input", "output", "cache_read", "cache_write")
_BUILT_IN = {meter.slug: meter for meter in BUILT_IN_METERS}
_CALL_DIMENSIONS = frozenset({"model", "provider", "status_code", "route", "type"})


@dataclass(frozen=True, slots=True)
class FeatureMeasure:
    """A meter narrowed by filters, compiled once: the amount a call adds to it."""

    meter: Meter
    filters: Mapping[str, frozenset[str]]
    _value: tuple[str | int, ...] | None
    _dimensions: tuple[tuple[tuple[str | int, ...], frozenset[str]], ...]
    _fast: str | None  # "tokens" | "requests" | "cost": a built-in meter read from the call's record
    _types: tuple[str, ...] | None = None  # tokens: the token types the filters allow (None: every type)
    _checked: bool = False  # whether a filter names a call dimension other than the token type

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
        fast = None
        if _BUILT_IN.get(meter.slug) == meter and set(allowed) <= _CALL_DIMENSIONS:
            fast = {"llm_tokens": "tokens", "llm_requests": "requests", "llm_cost": "cost"}.get(meter.slug)
        types = None
        if "type" in allowed:
            types = tuple(kind for kind in _TOKEN_TYPES if kind in allowed["type"])
        return cls(meter, allowed, value, dimensions, fast, types, bool(set(allowed) - {"type"}))

    def token_types(self) -> tuple[str, ...] | None:
        """The token types whose counts this measure adds up, where it is just that (the built-in `llm_tokens`
        filtered on the token type at most); None for any other measure."""
        if self._fast != "tokens" or self._checked:
            return None
        return _TOKEN_TYPES if self._types is None else self._types

    def worst_kind(self) -> str | None:
        """ "tokens", "requests" or "cost" where the measure reads a call's record only for its token counts and
        provider price (a built-in meter filtered on the token type at most); None for any other measure."""
        return None if self._checked else self._fast

    def amount(self, call: LlmCall) -> Decimal:
        """What the call adds to the meter slice."""
        fast = self._fast
        if fast is None:
            return self.amount_of_events(llm_call_events(call))
        if self._checked:  # filters on the call's own dimensions (other than the token type)
            filters = self.filters
            for name, given in (
                ("model", call.model),
                ("provider", call.provider),
                ("status_code", str(call.status_code)),
                ("route", call.route),
            ):
                allowed = filters.get(name)
                if allowed is not None and given not in allowed:
                    return _ZERO
        if fast == "requests":
            return _ONE
        usage = call.usage
        if usage is None:
            return _ZERO
        types = self._types
        if fast == "tokens":  # integer arithmetic on the token counts, one Decimal at the end
            if types is None:
                return Decimal(usage.input + usage.output + usage.cache_read + usage.cache_write)
            if len(types) == 1:
                return Decimal(getattr(usage, types[0]))
            return Decimal(sum(getattr(usage, kind) for kind in types))
        price = call.price
        if price is None:
            return _ZERO  # an event without cost_usd adds nothing to llm_cost
        per_type = price.per_type()
        return sum((per_type[kind] * n for kind, n in usage.by_type().items()), _ZERO)

    def amount_of_events(self, events: Sequence[Event]) -> Decimal:
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
