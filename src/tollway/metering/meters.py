"""Meter definitions: what to aggregate, how, and by which dimensions. The built-in LLM meters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from tollway.errors import ValidationError
from tollway.metering.jsonpath import compile_path
from tollway.metering.llm import REQUEST_EVENT, TOKEN_TYPES, TOKENS_EVENT


class MeterFieldError(ValidationError, ValueError):
    """An invalid meter definition; `field` names the offending field in the API's spelling.

    Still a ValueError, for the callers that catch that (configuration loading)."""


def _check_path(path: str, name: str) -> None:
    try:
        compile_path(path)
    except ValueError as exc:
        raise MeterFieldError(str(exc), field=name) from None


SLUG = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,62}$")
GROUP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MANAGED_BY = ("builtin", "config", "api")


class Aggregation(StrEnum):
    SUM = "SUM"
    COUNT = "COUNT"
    AVG = "AVG"
    MIN = "MIN"
    MAX = "MAX"
    UNIQUE_COUNT = "UNIQUE_COUNT"
    LATEST = "LATEST"


class WindowSize(StrEnum):
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"
    MONTH = "MONTH"


@dataclass(frozen=True)
class Meter:
    slug: str
    event_type: str
    aggregation: Aggregation
    value_property: str | None = None
    group_by: Mapping[str, str] = field(default_factory=dict)  # kept sorted by name: the dimension order
    description: str = ""
    managed_by: str = "api"  # builtin | config | api: who owns the definition (only api meters are deletable)
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # One dimension order for every reader: rollup keys store dimension values by position (a JSON
        # array), so the order is part of the stored data. A meter built from the caller's mapping and
        # one read back from its stored record must agree, whatever order the groupBy was written in.
        object.__setattr__(self, "group_by", dict(sorted(self.group_by.items())))
        if not SLUG.match(self.slug):
            raise MeterFieldError("slug must be lowercase letters, digits, '_' or '-' (at most 63)", field="slug")
        if self.aggregation is not Aggregation.COUNT and not self.value_property:
            raise MeterFieldError(f"valueProperty is required for {self.aggregation.value}", field="valueProperty")
        if self.value_property:
            _check_path(self.value_property, "valueProperty")
        if not self.event_type or len(self.event_type) > 255:
            raise MeterFieldError("eventType must be 1 to 255 characters", field="eventType")
        if len(self.group_by) > 32:
            raise MeterFieldError("at most 32 groupBy dimensions", field="groupBy")
        for name, path in self.group_by.items():
            if name == "subject":
                raise MeterFieldError("groupBy name 'subject' is reserved", field="groupBy")
            if not GROUP_NAME.match(name):
                raise MeterFieldError(f"groupBy name {name!r} must be letters, digits and '_'", field="groupBy")
            _check_path(path, "groupBy")
        if self.managed_by not in MANAGED_BY:
            raise MeterFieldError(f"managed_by must be one of {', '.join(MANAGED_BY)}", field="managedBy")

    @property
    def built_in(self) -> bool:
        return self.managed_by == "builtin"

    def definition(self) -> dict[str, Any]:
        """What decides the meter's rollups: a change here means its rollups must be rebuilt."""
        return {
            "eventType": self.event_type,
            "aggregation": self.aggregation.value,
            "valueProperty": self.value_property if self.aggregation is not Aggregation.COUNT else None,
            "groupBy": dict(self.group_by),
        }

    def definition_key(self) -> str:
        return orjson.dumps(self.definition()).decode()

    def to_record(self) -> dict[str, Any]:
        return {**self.definition(), "slug": self.slug, "description": self.description, "managedBy": self.managed_by}

    @classmethod
    def from_record(
        cls, record: Mapping[str, Any], *, created_at: datetime | None = None, updated_at: datetime | None = None
    ) -> Meter:
        """Build a meter from its stored (or API / config) shape. Raises MeterFieldError (a ValueError) naming
        the field."""
        try:
            aggregation = Aggregation(str(record.get("aggregation", "")).upper())
        except ValueError:
            known = ", ".join(a.value for a in Aggregation)
            raise MeterFieldError(f"aggregation must be one of {known}", field="aggregation") from None
        group_by = record.get("groupBy") or {}
        if not isinstance(group_by, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in group_by.items()
        ):
            raise MeterFieldError("groupBy must map names to JSONPath strings", field="groupBy")
        value_property = record.get("valueProperty")
        if value_property is not None and not isinstance(value_property, str):
            raise MeterFieldError("valueProperty must be a JSONPath string", field="valueProperty")
        return cls(
            slug=str(record.get("slug", "")),
            event_type=str(record.get("eventType", "")),
            aggregation=aggregation,
            value_property=value_property or None,
            group_by=dict(group_by),
            description=str(record.get("description") or ""),
            managed_by=str(record.get("managedBy") or "api"),
            created_at=created_at,
            updated_at=updated_at,
        )


LLM_DIMENSIONS = {
    "model": "$.model",
    "provider": "$.provider",
    "type": "$.type",
    "status_code": "$.status_code",
}

BUILT_IN_METERS = (
    Meter(
        slug="llm_tokens",
        event_type=TOKENS_EVENT,
        aggregation=Aggregation.SUM,
        value_property="$.tokens",
        group_by=LLM_DIMENSIONS,
        description="LLM tokens through the gateway, by model, provider, token type and status code.",
        managed_by="builtin",
    ),
    Meter(
        slug="llm_requests",
        event_type=REQUEST_EVENT,
        aggregation=Aggregation.COUNT,
        group_by={k: v for k, v in LLM_DIMENSIONS.items() if k != "type"} | {"route": "$.route"},
        description="LLM requests through the gateway, by model, provider, status code and route.",
        managed_by="builtin",
    ),
    Meter(
        slug="llm_cost",
        event_type=REQUEST_EVENT,
        aggregation=Aggregation.SUM,
        value_property="$.cost_usd",
        group_by={k: v for k, v in LLM_DIMENSIONS.items() if k != "type"},
        description="Provider cost in USD of LLM requests through the gateway (from the price book), "
        "by model, provider and status code. Requests without a known price are not counted.",
        managed_by="builtin",
    ),
)


# The values a built-in meter's dimension can take, where the gateway alone decides them: a feature filtered on
# any other value would meter nothing, forever (`type: request` on llm_tokens is the classic slip).
KNOWN_VALUES: Mapping[str, Mapping[str, frozenset[str]]] = {
    "llm_tokens": {"type": frozenset(TOKEN_TYPES)},
}


def unknown_filter_values(meter: Meter, filters: Mapping[str, tuple[str, ...] | list[str]]) -> list[str]:
    """One line per filter value a built-in meter never records, naming the values it does record."""
    if meter.managed_by != "builtin":
        return []
    known = KNOWN_VALUES.get(meter.slug, {})
    problems = []
    for name, values in filters.items():
        allowed = known.get(name)
        if allowed is None:
            continue
        for value in values:
            if value not in allowed:
                problems.append(
                    f"{name} {value!r} is never recorded by meter {meter.slug!r} "
                    f"(its {name} values: {', '.join(sorted(allowed))})"
                )
    return problems
