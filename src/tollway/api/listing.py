"""List endpoints: page and pageSize query parameters, boolean flags, and the paginated envelope."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tollway.api.openapi import or_empty
from tollway.api.wire import Json
from tollway.errors import ValidationError

T = TypeVar("T")

# How the list parameters look in the OpenAPI document (Query(json_schema_extra=...)): the routes read them
# from the query themselves, to name the offending one in their own words.
# Given empty, each reads as absent (the default page, false).
PAGE_SCHEMA = or_empty({"type": "integer", "minimum": 1, "maximum": 1_000_000})
PAGE_SIZE_SCHEMA = or_empty({"type": "integer", "minimum": 1, "maximum": 1000})
FLAG_SCHEMA = {"type": "string", "enum": ["true", "false", "1", "0", ""]}


def items_of(*values: str) -> dict[str, object]:
    """A repeated query parameter whose every value is one of `values`."""
    return {"items": {"type": "string", "enum": list(values)}}


@dataclass(frozen=True)
class Page:
    page: int
    size: int
    given: bool  # page or pageSize was in the query (OpenMeter lists features as a bare array otherwise)


def parse_page(params: Mapping[str, str]) -> Page:
    values: dict[str, int] = {}
    for name, default, top in (("page", 1, 1_000_000), ("pageSize", 100, 1000)):
        raw = params.get(name)
        if raw is None or raw == "":
            values[name] = default
            continue
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= top:
            raise ValidationError(f"{name} must be an integer from 1 to {top}, got {raw!r}", field=name)
        values[name] = int(raw)
    return Page(values["page"], values["pageSize"], given="page" in params or "pageSize" in params)


def parse_flag(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return False
    if raw.lower() not in ("true", "false", "1", "0"):
        raise ValidationError(f"{name} must be true or false, got {raw!r}", field=name)
    return raw.lower() in ("true", "1")


def paginated(items: Sequence[T], page: Page, encode: Callable[[T], Json]) -> Json:
    start = (page.page - 1) * page.size
    return {
        "items": [encode(item) for item in items[start : start + page.size]],
        "page": page.page,
        "pageSize": page.size,
        "totalCount": len(items),
    }
