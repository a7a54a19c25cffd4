"""/api/v3/openmeter/meters: OpenMeter's v3 meter bodies (`key`, `name`, `event_type` or `event_type_filter`,
`aggregation` in lower case, `value_property`, `dimensions`), as Kong's metering & billing how-tos create them.
The same meters as /api/v1/meters (key = slug, dimensions = groupBy), answered in the v3 shape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tollway import bounded_json
from tollway.api.openapi import problem_responses
from tollway.errors import ValidationError
from tollway.metering.events import format_time
from tollway.metering.meters import Meter
from tollway.metering.service import MeteringService

FIELDS = {
    "key",
    "name",
    "description",
    "event_type",
    "event_type_filter",
    "aggregation",
    "value_property",
    "dimensions",
}
V3_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["key", "aggregation"],
                    "properties": {
                        "key": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_\\-]{0,62}$"},
                        "name": {"type": ["string", "null"]},
                        "description": {"type": ["string", "null"]},
                        "event_type": {"type": "string", "minLength": 1, "maxLength": 255},
                        "event_type_filter": {"type": "string", "minLength": 1, "maxLength": 255},
                        "aggregation": {
                            "type": "string",
                            "enum": ["sum", "count", "unique_count", "avg", "min", "max", "latest"],
                        },
                        "value_property": {"type": ["string", "null"]},
                        "dimensions": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
                    },
                }
            }
        },
    }
}


def v3_meter_json(meter: Meter) -> dict[str, Any]:
    return {
        "id": meter.slug,
        "key": meter.slug,
        "name": meter.slug,
        "description": meter.description or None,
        "aggregation": meter.aggregation.value.lower(),
        "event_type_filter": meter.event_type,
        "value_property": meter.value_property,
        "dimensions": dict(meter.group_by),
        "created_at": format_time(meter.created_at) if meter.created_at else None,
        "updated_at": format_time(meter.updated_at) if meter.updated_at else None,
    }


def v1_record(body: Any) -> dict[str, Any]:
    """A v3 meter body as the v1 record Meter.from_record reads."""
    if not isinstance(body, dict):
        raise ValidationError("expected a meter object", field="body")
    unknown = set(body) - FIELDS
    if unknown:
        raise ValidationError(f"unknown fields: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    event_type = body.get("event_type", body.get("event_type_filter"))
    for name, value in (("key", body.get("key")), ("event_type", event_type), ("aggregation", body.get("aggregation"))):
        if not isinstance(value, str) or not value:
            raise ValidationError(f"{name} is required (a string)", field=name)
    for name in ("name", "description", "value_property"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ValidationError(f"{name} must be a string", field=name)
    if body.get("dimensions") is not None and not isinstance(body["dimensions"], dict):
        raise ValidationError("dimensions must map names to JSONPath strings", field="dimensions")
    return {
        "slug": body["key"],
        "eventType": event_type,
        "aggregation": body["aggregation"],
        "valueProperty": body.get("value_property"),
        "groupBy": body.get("dimensions") or {},
        "description": body.get("description") or body.get("name") or "",
        "managedBy": "api",
    }


def meters_v3_router(service: MeteringService) -> APIRouter:
    router = APIRouter(prefix="/api/v3/openmeter/meters", tags=["meters"])

    @router.post(
        "",
        summary="Create a meter (OpenMeter v3 body)",
        status_code=201,
        responses=problem_responses(400, 409),
        openapi_extra=V3_BODY,
    )
    async def create_meter_v3(request: Request) -> dict[str, Any]:
        record = v1_record(bounded_json.decode(await request.body(), nul=False))
        return v3_meter_json(await service.create_meter(Meter.from_record(record)))

    @router.get("", summary="List meters (OpenMeter v3 shape)")
    async def list_meters_v3() -> dict[str, Any]:
        meters = [v3_meter_json(m) for m in await service.meters()]
        return {"data": meters, "meta": {"page": {"size": len(meters)}}}

    @router.get("/{key}", summary="Get a meter (OpenMeter v3 shape)", responses=problem_responses(404))
    async def get_meter_v3(key: str) -> dict[str, Any]:
        return v3_meter_json(await service.meter(key))

    return router
