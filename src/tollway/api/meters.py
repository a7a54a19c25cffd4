"""/api/v1/meters: list, get, and query meters (OpenMeter's shapes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tollway.api.encoding import decimal_text
from tollway.errors import ValidationError
from tollway.metering.aggregation import MeterQuery, QueryRow, parse_zone
from tollway.metering.events import format_time, parse_time
from tollway.metering.meters import Meter, WindowSize
from tollway.metering.service import MeteringService


def meter_json(meter: Meter) -> dict[str, Any]:
    return {
        "id": meter.slug,
        "slug": meter.slug,
        "description": meter.description,
        "eventType": meter.event_type,
        "aggregation": meter.aggregation.value,
        "valueProperty": meter.value_property,
        "groupBy": dict(meter.group_by),
        "builtIn": meter.built_in,
    }


def row_json(row: QueryRow) -> dict[str, Any]:
    return {
        "value": decimal_text(row.value),
        "windowStart": format_time(row.window_start),
        "windowEnd": format_time(row.window_end),
        "subject": row.subject,
        "groupBy": row.group_by,
    }


def _time_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise ValidationError(f"'{name}' must be an RFC 3339 time with an offset, got {raw!r}", field=name) from None


def parse_meter_query(request: Request) -> MeterQuery:
    params = request.query_params
    window_size = None
    raw_window = params.get("windowSize")
    if raw_window:
        try:
            window_size = WindowSize(raw_window.upper())
        except ValueError:
            raise ValidationError(
                f"windowSize must be one of MINUTE, HOUR, DAY, MONTH, got {raw_window!r}", field="windowSize"
            ) from None
    try:
        zone = parse_zone(params.get("windowTimeZone") or "UTC")
    except ValueError as exc:
        raise ValidationError(str(exc), field="windowTimeZone") from None
    subjects = tuple(params.getlist("subject")) or None
    group_by = tuple(dict.fromkeys(v for value in params.getlist("groupBy") for v in value.split(",") if v))
    filters: dict[str, tuple[str, ...]] = {}
    for key in params:
        if key.startswith("filterGroupBy[") and key.endswith("]"):
            filters[key[len("filterGroupBy[") : -1]] = tuple(params.getlist(key))
    return MeterQuery(
        start=_time_param(request, "from"),
        end=_time_param(request, "to"),
        window_size=window_size,
        window_tz=zone,
        subjects=subjects,
        group_by=group_by,
        filter_group_by=filters,
    )


def meters_router(service: MeteringService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/meters", tags=["meters"])

    @router.get("", summary="List meters")
    async def list_meters() -> list[dict[str, Any]]:
        return [meter_json(m) for m in service.meters()]

    @router.get("/{slug}", summary="Get a meter")
    async def get_meter(slug: str) -> dict[str, Any]:
        return meter_json(service.meter(slug))

    @router.get("/{slug}/query", summary="Query a meter", response_model=None)
    async def query_meter(slug: str, request: Request) -> dict[str, Any] | Response:
        query = parse_meter_query(request)
        rows = await service.query(slug, query)
        return {
            "from": format_time(query.start) if query.start else None,
            "to": format_time(query.end) if query.end else None,
            "windowSize": query.window_size.value if query.window_size else None,
            "data": [row_json(r) for r in rows],
        }

    return router
