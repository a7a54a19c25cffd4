"""/api/v1/meters: create, list, get, delete and query meters (OpenMeter's shapes; CSV on request)."""

from __future__ import annotations

import ast
import asyncio
import csv
import io
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from starlette.datastructures import QueryParams
from starlette.responses import Response

from tollway import bounded_json
from tollway.api.encoding import decimal_text
from tollway.api.listing import PAGE_SCHEMA, PAGE_SIZE_SCHEMA, parse_page
from tollway.api.openapi import TIME, or_empty, problem_responses
from tollway.errors import ValidationError
from tollway.metering.aggregation import MeterQuery, QueryRow, parse_zone
from tollway.metering.events import format_time, parse_time
from tollway.metering.meters import Aggregation, Meter, WindowSize
from tollway.metering.service import OFF_LOOP_ROWS, MeteringService

T = TypeVar("T")
# A query grouped by subject without page/pageSize answers for at most this many subjects (more: 400, asking
# for pages); OpenMeter's query has no pages, so the bare answer stays for everyone below it.
MAX_UNPAGED_SUBJECTS = 10_000

_JSON_PATH = {
    "type": "string",
    "pattern": "^\\$(\\.[A-Za-z_][A-Za-z0-9_]*|\\[[0-9]+\\])+$",
    "description": "A JSONPath into the event's data: `$.a.b`, `$.a[0]` (also `$['a b']`).",
}
METER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["slug", "eventType", "aggregation"],
                    "properties": {
                        "slug": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_\\-]{0,62}$"},
                        "name": {"type": ["string", "null"]},
                        "description": {"type": ["string", "null"]},
                        "eventType": {"type": "string", "minLength": 1, "maxLength": 255},
                        "aggregation": {"type": "string", "enum": [a.value for a in Aggregation]},
                        "valueProperty": {
                            **_JSON_PATH,
                            "type": ["string", "null"],
                            "description": "Required unless aggregation is COUNT.",
                        },
                        "groupBy": {
                            "type": ["object", "null"],
                            "maxProperties": 32,
                            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]{0,62}$", "not": {"const": "subject"}},
                            "additionalProperties": _JSON_PATH,
                        },
                    },
                    "if": {"not": {"properties": {"aggregation": {"const": "COUNT"}}}},
                    "then": {"required": ["valueProperty"], "properties": {"valueProperty": {"type": "string"}}},
                }
            }
        },
    }
}
_TIME = or_empty(TIME)  # given empty: absent
QUERY_PARAMETERS = {
    "parameters": [
        {"name": "from", "in": "query", "schema": _TIME, "description": "Start (inclusive, RFC 3339); before `to`."},
        {"name": "to", "in": "query", "schema": _TIME, "description": "End (exclusive, RFC 3339)."},
        {
            "name": "windowSize",
            "in": "query",
            "schema": {"type": "string", "enum": [*(w.value for w in WindowSize), ""]},
            "description": "One row per window and group; absent: one row per group over the whole range.",
        },
        {
            "name": "windowTimeZone",
            "in": "query",
            "schema": {"type": "string", "default": "UTC"},
            "description": "An IANA time zone for DAY and MONTH windows, e.g. Europe/Berlin.",
        },
        {
            "name": "subject",
            "in": "query",
            "schema": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "style": "form",
            "explode": True,
        },
        {
            "name": "groupBy",
            "in": "query",
            "schema": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "style": "form",
            "explode": True,
            "description": "`subject` or one of the meter's groupBy names (comma-separated or repeated).",
        },
        {
            "name": "filterGroupBy",
            "in": "query",
            "schema": {"type": "string", "pattern": "^(\\{.*\\}|[^=,]+=[^,]*(,[^=,]+=[^,]*)*)$"},
            "description": "name=value pairs (comma-separated), or a JSON object of names to values; also "
            "`filterGroupBy[name]=value`.",
        },
        {"name": "customer", "in": "query", "schema": {"type": "string"}, "description": "Not supported yet."},
        {
            "name": "page",
            "in": "query",
            "schema": PAGE_SCHEMA,
            "description": "With groupBy=subject: the page of subjects (in key order) to answer for; with page or "
            "pageSize the answer also carries page, pageSize and totalCount (the number of subjects).",
        },
        {"name": "pageSize", "in": "query", "schema": PAGE_SIZE_SCHEMA, "description": "Subjects per page."},
    ],
    "responses": {
        "200": {
            "description": "Rows (JSON), or CSV with `Accept: text/csv`.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
}


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
        "managedBy": meter.managed_by,
        "createdAt": format_time(meter.created_at) if meter.created_at else None,
        "updatedAt": format_time(meter.updated_at) if meter.updated_at else None,
    }


def rows_csv(rows: list[QueryRow], group_names: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["window_start", "window_end", "subject", *group_names, "value"])
    for row in rows:
        writer.writerow(
            [
                format_time(row.window_start),
                format_time(row.window_end),
                row.subject or "",
                *(row.group_by.get(name) or "" for name in group_names),
                decimal_text(row.value),
            ]
        )
    return buffer.getvalue()


def row_json(row: QueryRow) -> dict[str, Any]:
    return {
        "value": decimal_text(row.value),
        "windowStart": format_time(row.window_start),
        "windowEnd": format_time(row.window_end),
        "subject": row.subject,
        "groupBy": row.group_by,
    }


def _time_param(params: QueryParams, name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_time(raw)
    except ValueError as exc:
        raise ValidationError(f"'{name}' {exc}", field=name) from None


def parse_meter_query(params: QueryParams) -> MeterQuery:
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
    for raw in params.getlist("filterGroupBy"):
        if raw.startswith("{"):
            for name, values in _filter_object(raw).items():
                filters[name] = (*filters.get(name, ()), *values)
            continue
        for pair in raw.split(","):
            name, sep, value = pair.partition("=")
            if not sep or not name:
                raise ValidationError(
                    f"filterGroupBy must be name=value (or filterGroupBy[name]=value), got {pair!r}",
                    field="filterGroupBy",
                )
            filters[name] = (*filters.get(name, ()), value)
    for name in ("subject", "groupBy"):
        if any(not value for value in params.getlist(name)):
            raise ValidationError(f"{name} must not be empty", field=name)
    return MeterQuery(
        start=_time_param(params, "from"),
        end=_time_param(params, "to"),
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
        return [meter_json(m) for m in await service.meters()]

    @router.post(
        "", summary="Create a meter", status_code=201, responses=problem_responses(400, 409), openapi_extra=METER_BODY
    )
    async def create_meter(request: Request) -> dict[str, Any]:
        body = bounded_json.decode(await request.body(), nul=False)
        if not isinstance(body, dict):
            raise ValidationError("expected a meter object", field="body")
        unknown = set(body) - {"slug", "name", "description", "eventType", "aggregation", "valueProperty", "groupBy"}
        if unknown:
            raise ValidationError(f"unknown fields: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
        for name in ("slug", "eventType", "aggregation"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise ValidationError(f"{name} is required (a string)", field=name)
        for name in ("name", "description"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise ValidationError(f"{name} must be a string", field=name)
        if body.get("groupBy") is not None and not isinstance(body["groupBy"], dict):  # false, [] or "" too
            raise ValidationError("groupBy must map names to JSONPath strings", field="groupBy")
        meter = Meter.from_record({**body, "managedBy": "api"})  # MeterFieldError names its field
        return meter_json(await service.create_meter(meter))

    @router.get("/{slug}", summary="Get a meter", responses=problem_responses(404))
    async def get_meter(slug: str) -> dict[str, Any]:
        return meter_json(await service.meter(slug))

    @router.delete(
        "/{slug}",
        summary="Delete a meter (only one created through this API)",
        status_code=204,
        response_class=Response,
        responses=problem_responses(404, 409),
    )
    async def delete_meter(slug: str) -> Response:
        await service.delete_meter(slug)
        return Response(status_code=204)

    @router.get(
        "/{slug}/query",
        summary="Query a meter",
        response_model=None,
        responses=problem_responses(400, 404),
        openapi_extra=QUERY_PARAMETERS,
    )
    async def query_meter(slug: str, request: Request) -> Response:
        return await answer_query(service, slug, request.query_params, request.headers.get("accept", ""))

    return router


async def answer_query(service: MeteringService, slug: str, params: QueryParams, accept: str) -> Response:
    """A meter query (GET's query string, or POST's body as the same parameters): JSON rows, or CSV."""
    query = parse_meter_query(params)
    customer = params.get("customer")
    pages = parse_page(params)
    paging: dict[str, int] = {}
    if pages.given:
        if "subject" not in query.group_by:
            raise ValidationError("page and pageSize page over subjects: add groupBy=subject", field="page")
        offset = (pages.page - 1) * pages.size
        rows, total = await service.query_page(slug, query, offset=offset, limit=pages.size, customer=customer)
        paging = {"page": pages.page, "pageSize": pages.size, "totalCount": total}
    else:
        await service.check_subject_count(slug, query, most=MAX_UNPAGED_SUBJECTS, customer=customer)
        rows = await service.query(slug, query, customer=customer)
    if "text/csv" in accept:
        names = [g for g in query.group_by if g != "subject"]
        return Response(
            await _off_loop(len(rows), rows_csv, rows, names),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{slug}.csv"'},
        )
    head = {
        "from": format_time(query.start) if query.start else None,
        "to": format_time(query.end) if query.end else None,
        "windowSize": query.window_size.value if query.window_size else None,
    }
    return Response(await _off_loop(len(rows), _query_json, head, rows, paging), media_type="application/json")


def _query_json(head: dict[str, Any], rows: list[QueryRow], paging: dict[str, int]) -> bytes:
    return orjson.dumps({**head, "data": [row_json(r) for r in rows], **paging})


async def _off_loop(size: int, encode: Callable[..., T], *args: Any) -> T:
    """`encode(*args)`, in a worker thread when there are many rows (the event loop keeps serving)."""
    if size > OFF_LOOP_ROWS:
        return await asyncio.to_thread(encode, *args)
    return encode(*args)


def _filter_object(raw: str) -> dict[str, tuple[str, ...]]:
    """filterGroupBy as one object: JSON, or the Python dict repr that openmeter==1.0.0b236 sends."""
    try:
        parsed = bounded_json.decode(raw, field="filterGroupBy")
    except ValidationError:
        try:
            parsed = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parsed = None
    if not isinstance(parsed, dict):
        raise ValidationError(
            "filterGroupBy must be name=value pairs or an object of names to values", field="filterGroupBy"
        )
    if bounded_json.nul_path(parsed) is not None:  # "\u0000" in JSON, or "\x00" in the Python repr
        raise bounded_json.nul_refused("filterGroupBy")
    found: dict[str, tuple[str, ...]] = {}
    for name, value in parsed.items():
        values = value if isinstance(value, list) else [value]
        if not isinstance(name, str) or not all(isinstance(v, str) for v in values):
            raise ValidationError("filterGroupBy values must be strings", field="filterGroupBy")
        found[name] = tuple(values)
    return found
