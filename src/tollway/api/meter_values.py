"""More of OpenMeter's meter API: a query by POST body, the subjects of a meter, and the values of one of its
groupBy dimensions (what the openmeter SDK's `meters.query`, `list_subjects` and `list_group_by_values` call)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.datastructures import QueryParams
from starlette.responses import Response

from tollway import bounded_json
from tollway.api.meters import answer_query
from tollway.api.openapi import TIME, or_empty, problem_responses
from tollway.errors import NotFoundError, ValidationError
from tollway.metering.aggregation import MeterQuery
from tollway.metering.events import parse_time
from tollway.metering.service import MeteringService

# The POST body (OpenMeter's MeterQueryRequest) -> the GET query's parameters.
_SCALARS = {"from": "from", "to": "to", "windowSize": "windowSize", "windowTimeZone": "windowTimeZone"}
_LISTS = ("subject", "groupBy")
_IGNORED = ("clientId",)
QUERY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {  # null: absent
                        "clientId": {"type": ["string", "null"]},
                        "from": {**TIME, "type": ["string", "null"]},
                        "to": {**TIME, "type": ["string", "null"]},
                        "windowSize": {"enum": ["MINUTE", "HOUR", "DAY", "MONTH", None]},
                        "windowTimeZone": {"type": ["string", "null"]},
                        "subject": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}},
                        "filterCustomerId": {"type": ["array", "null"], "items": {"type": "string"}, "maxItems": 1},
                        "filterGroupBy": {
                            "type": ["object", "null"],
                            "additionalProperties": {"type": "array", "items": {"type": "string"}},
                        },
                        "groupBy": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}},
                    },
                }
            }
        },
    }
}
RANGE = {
    "parameters": [
        {"name": "from", "in": "query", "schema": or_empty(TIME), "description": "Event time, inclusive."},
        {"name": "to", "in": "query", "schema": or_empty(TIME), "description": "Event time, exclusive."},
    ]
}


def query_params_of(body: Any) -> QueryParams:
    """OpenMeter's MeterQueryRequest as the parameters the GET query takes (one parser for both)."""
    if not isinstance(body, dict):
        raise ValidationError("expected a meter query object", field="body")
    pairs: list[tuple[str, str]] = []
    for key, value in body.items():
        if value is None or key in _IGNORED:
            continue
        if key in _SCALARS:
            if not isinstance(value, str) or (not value and key != "windowTimeZone"):
                raise ValidationError(f"{key} must be a non-empty string", field=key)
            pairs.append((_SCALARS[key], value))
        elif key in _LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValidationError(f"{key} must be an array of strings", field=key)
            pairs.extend((key, v) for v in value)
        elif key == "filterGroupBy":
            if not isinstance(value, dict):
                raise ValidationError("filterGroupBy must map names to arrays of values", field=key)
            pairs.append(("filterGroupBy", orjson.dumps(value).decode()))
        elif key == "filterCustomerId":
            if not isinstance(value, list) or len(value) > 1 or not all(isinstance(v, str) for v in value):
                raise ValidationError("filterCustomerId: one customer at most", field=key)
            pairs.extend(("customer", v) for v in value)
        else:
            raise ValidationError(f"unknown field: {key}", field=key)
    return QueryParams(pairs)


def _range(params: QueryParams) -> tuple[datetime | None, datetime | None]:
    found: list[datetime | None] = []
    for name in ("from", "to"):
        raw = params.get(name)
        try:
            found.append(parse_time(raw) if raw else None)
        except ValueError as exc:
            raise ValidationError(f"'{name}' {exc}", field=name) from None
    return found[0], found[1]


def meter_values_router(service: MeteringService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/meters", tags=["meters"])

    @router.post(
        "/{slug}/query",
        summary="Query a meter (the query in the body)",
        response_model=None,
        responses=problem_responses(400, 404),
        openapi_extra=QUERY_BODY,
    )
    async def query_meter_by_body(slug: str, request: Request) -> Response:
        params = query_params_of(bounded_json.decode(await request.body(), nul=False))
        return await answer_query(service, slug, params, request.headers.get("accept", ""))

    @router.get(
        "/{slug}/subjects",
        summary="The subjects with usage of a meter",
        responses=problem_responses(400, 404),
        openapi_extra=RANGE,
    )
    async def list_meter_subjects(slug: str, request: Request) -> list[str]:
        start, end = _range(request.query_params)
        rows = await service.query(slug, MeterQuery(start=start, end=end, group_by=("subject",)))
        return sorted({row.subject for row in rows if row.subject is not None})

    @router.get(
        "/{slug}/group-by/{key}/values",
        summary="The values of one of a meter's groupBy dimensions",
        responses=problem_responses(400, 404),
        openapi_extra=RANGE,
    )
    async def list_group_by_values(slug: str, key: str, request: Request) -> list[str]:
        meter = await service.meter(slug)
        if key not in meter.group_by:
            raise NotFoundError(f"meter {slug!r} has no groupBy {key!r}", field="groupByKey")
        start, end = _range(request.query_params)
        rows = await service.query(slug, MeterQuery(start=start, end=end, group_by=(key,)))
        return sorted({value for row in rows if (value := row.group_by.get(key)) is not None})

    return router
