"""Meter definitions: what to aggregate, how, and by which dimensions. The built-in LLM meters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from tollway.metering.jsonpath import compile_path
from tollway.metering.llm import REQUEST_EVENT, TOKENS_EVENT

SLUG = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,62}$")


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
    group_by: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    built_in: bool = False

    def __post_init__(self) -> None:
        if not SLUG.match(self.slug):
            raise ValueError("slug must be lowercase letters, digits, '_' or '-' (at most 63)")
        if self.aggregation is not Aggregation.COUNT and not self.value_property:
            raise ValueError(f"valueProperty is required for {self.aggregation.value}")
        if self.value_property:
            compile_path(self.value_property)
        for name, path in self.group_by.items():
            if name == "subject":
                raise ValueError("groupBy name 'subject' is reserved")
            compile_path(path)


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
        built_in=True,
    ),
    Meter(
        slug="llm_requests",
        event_type=REQUEST_EVENT,
        aggregation=Aggregation.COUNT,
        group_by={k: v for k, v in LLM_DIMENSIONS.items() if k != "type"} | {"route": "$.route"},
        description="LLM requests through the gateway, by model, provider, status code and route.",
        built_in=True,
    ),
)
