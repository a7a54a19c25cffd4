"""POST /api/v1/events: CloudEvents 1.0 ingestion (also at /api/v3/openmeter/events, answered 202); GET lists
stored events with OpenMeter's filters.

Ingestion follows OpenMeter's shape (its SDK expects 204 No Content).

`application/cloudevents+json` carries one event, `application/cloudevents-batch+json` an array,
`application/json` either. A request is all-or-nothing: any invalid event answers 400 with one
error per field and stores nothing. Events already stored (same source and id) are accepted and
skipped. Headers report what happened: `Tollway-Events-Received` and `Tollway-Events-Stored`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from tollway import bounded_json
from tollway.api.body_limit import BodyLimit
from tollway.api.errors import problem_of
from tollway.api.openapi import TEXT_255, TIME, or_empty, problem_responses
from tollway.api.params import refuse_nul
from tollway.errors import DomainError, TooLargeError, UnsupportedMediaTypeError, ValidationError
from tollway.metering.events import format_time, parse_time
from tollway.metering.ports import EventFilter, ListedEvent
from tollway.metering.service import MeteringService

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_BATCH_EVENTS = 10_000
SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
EITHER = ("application/json", "")

CLOUDEVENT_SCHEMA = {
    "type": "object",
    "description": "A CloudEvents 1.0 event. `time` defaults to now; it lies from 1970-01-01T00:00:00Z to 5 minutes "
    "ahead of the server's clock. Other attributes (CloudEvents extensions) are accepted and not stored.",
    "required": ["specversion", "id", "source", "type", "subject"],
    "properties": {
        "specversion": {"type": "string", "enum": ["1.0"]},
        "id": TEXT_255,
        "source": TEXT_255,
        "type": TEXT_255,
        "subject": TEXT_255,
        "time": {**TIME, "type": ["string", "null"]},
        "datacontenttype": {"type": ["string", "null"], "pattern": "^\\s*(application|text)/json\\s*(;.*)?$"},
        "data": {"type": ["object", "null"], "description": "The meters' values and groupBy dimensions."},
    },
    "not": {"required": ["data_base64"]},
}
BATCH_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "items": CLOUDEVENT_SCHEMA,
    "description": f"At most {MAX_BATCH_EVENTS} events (more: 413); all stored or none.",
}
EVENTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            SINGLE: {"schema": CLOUDEVENT_SCHEMA},
            BATCH: {"schema": BATCH_SCHEMA},
            "application/json": {"schema": {"oneOf": [CLOUDEVENT_SCHEMA, BATCH_SCHEMA]}},
        },
    }
}


def events_router(service: MeteringService, *, max_body_bytes: int = MAX_BODY_BYTES) -> APIRouter:
    router = APIRouter(prefix="/api/v1/events", tags=["events"])

    @router.post(
        "",
        summary="Ingest CloudEvents",
        status_code=204,
        response_class=Response,
        responses={
            204: {
                "description": "Every event stored or already stored (same source and id).",
                "headers": {
                    "Tollway-Events-Received": {"schema": {"type": "integer"}},
                    "Tollway-Events-Stored": {"schema": {"type": "integer"}, "description": "New ones."},
                },
            },
            **problem_responses(400, 413, 415),
        },
        openapi_extra=EVENTS_BODY,
    )
    async def ingest(request: Request) -> Response:
        received, stored = await _ingest(service, request, max_body_bytes)
        return Response(
            status_code=204, headers={"Tollway-Events-Received": str(received), "Tollway-Events-Stored": str(stored)}
        )

    @router.get(
        "",
        summary="List ingested events (newest first)",
        response_model=None,
        responses=problem_responses(400),
        openapi_extra=LIST_PARAMETERS,
    )
    async def list_events(request: Request) -> list[dict[str, Any]]:
        where, customers = parse_event_filter(request.query_params, service.now())
        return [listed_json(row) for row in await service.list_events(where, customers)]

    return router


def v3_events_router(service: MeteringService, *, max_body_bytes: int = MAX_BODY_BYTES) -> APIRouter:
    """OpenMeter's v3 ingest path, where Kong's metering & billing plugin posts: the same events, answered 202."""
    router = APIRouter(prefix="/api/v3/openmeter/events", tags=["events"])

    @router.post(
        "",
        summary="Ingest CloudEvents (OpenMeter v3 path)",
        status_code=202,
        response_class=Response,
        responses={202: {"description": "Every event stored or already stored."}, **problem_responses(400, 413, 415)},
        openapi_extra=EVENTS_BODY,
    )
    async def ingest_v3(request: Request) -> Response:
        received, stored = await _ingest(service, request, max_body_bytes)
        return Response(
            status_code=202, headers={"Tollway-Events-Received": str(received), "Tollway-Events-Stored": str(stored)}
        )

    return router


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
INGEST_PATHS = {"/api/v1/events": 204, "/api/v3/openmeter/events": 202}


class IngestRoute:
    """ASGI middleware: POST to the two ingest paths answered here, without FastAPI's routing, request and
    dependency machinery (most of what a single-event request cost). It sits inside AdminGate (the admin token
    is checked as for every management request) and runs the routed path's other steps in the same order:
    the management body limit (BodyLimit), refuse_nul on the query, _ingest, and DomainErrors answered by
    problem_of as the app's error handlers answer them. Any other request goes on to the app, and the routers
    above still describe these operations in the OpenAPI document."""

    def __init__(
        self, app: ASGIApp, *, service: MeteringService, max_body_bytes: int, max_events_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self._app = app
        self._service = service
        self._max_events_bytes = max_events_bytes
        self._limited = BodyLimit(self._answer, max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in INGEST_PATHS:
            await self._limited(scope, receive, send)
        else:
            await self._app(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        try:
            if scope.get("query_string"):  # only a query can hold a NUL here (these paths have no parameters)
                await refuse_nul(Request(scope, receive))
            declared, content_type = _headers(scope["headers"])
            received, stored = await _ingest_body(
                self._service, declared, content_type, _body_chunks(receive), self._max_events_bytes
            )
        except DomainError as exc:
            await problem_of(exc, f"{scope['method']} {path}")(scope, receive, send)
            return
        # What Response(status_code=..., headers=...) sends, without building one per request.
        status = INGEST_PATHS[path]
        headers = [(b"tollway-events-received", b"%d" % received), (b"tollway-events-stored", b"%d" % stored)]
        if status != 204:
            headers.append((b"content-length", b"0"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _headers(raw: list[tuple[bytes, bytes]]) -> tuple[str | None, str]:
    """Content-Length (None when absent) and Content-Type ("" when absent) of an ASGI request, the first of each
    as Starlette's Headers.get reads them."""
    declared: str | None = None
    content_type: str | None = None
    for name, value in raw:
        if name == b"content-length":
            if declared is None:
                declared = value.decode("latin-1")
        elif name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
    return declared, content_type or ""


async def _body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body's chunks as Starlette's Request.stream yields them (a disconnect: ClientDisconnect)."""
    while True:
        message = await receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                return
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


async def _ingest(service: MeteringService, request: Request, max_body_bytes: int) -> tuple[int, int]:
    headers = request.headers
    return await _ingest_body(
        service, headers.get("content-length"), headers.get("content-type", ""), request.stream(), max_body_bytes
    )


async def _ingest_body(
    service: MeteringService,
    declared: str | None,
    content_type: str,
    chunks: AsyncIterator[bytes],
    max_body_bytes: int,
) -> tuple[int, int]:
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > max_body_bytes:
        raise TooLargeError(f"the body is over {max_body_bytes} bytes; send smaller batches")
    body = bytearray()
    async for chunk in chunks:
        body.extend(chunk)
        if len(body) > max_body_bytes:
            raise TooLargeError(f"the body is over {max_body_bytes} bytes; send smaller batches")
    media = content_type.split(";")[0].strip().lower()
    if media not in (SINGLE, BATCH, *EITHER):
        raise UnsupportedMediaTypeError(
            f"unsupported content type {media!r}: use {SINGLE}, {BATCH} or application/json", field="content-type"
        )
    try:
        parsed = bounded_json.decode(bytes(body), nul=False)  # NUL, depth, duplicate keys, 64-bit ints, NaN
    except ValidationError as exc:
        raise ValidationError(exc.message, field=exc.field, details=((exc.field or "body", exc.message),)) from None
    if media == SINGLE and not isinstance(parsed, dict):
        raise ValidationError(f"{SINGLE} carries one event object", field="body", details=(("body", "object"),))
    if media == BATCH and not isinstance(parsed, list):
        raise ValidationError(f"{BATCH} carries an array of events", field="body", details=(("body", "array"),))
    if isinstance(parsed, list) and len(parsed) > MAX_BATCH_EVENTS:
        raise TooLargeError(f"at most {MAX_BATCH_EVENTS} events per batch")
    return await service.ingest(parsed)  # EventValidationError: one problem per field


LIST_LIMIT = 100  # OpenMeter's default and maximum
_TIME = or_empty(TIME)  # given empty: absent
_TEXT = {"type": "string"}  # matched exactly against what is stored; given empty: absent
DEFAULT_WINDOW = timedelta(hours=72)  # `from` when no other bound is given (OpenMeter's default)
LIST_PARAMETERS = {
    "parameters": [
        {"name": "clientId", "in": "query", "schema": {"type": "string"}, "description": "Accepted, unused."},
        {"name": "ingestedAtFrom", "in": "query", "schema": _TIME, "description": "Ingested at or after."},
        {"name": "ingestedAtTo", "in": "query", "schema": _TIME, "description": "Ingested at or before."},
        {"name": "id", "in": "query", "schema": _TEXT, "description": "The event's id."},
        {"name": "subject", "in": "query", "schema": _TEXT},
        {
            "name": "customerId",
            "in": "query",
            "schema": {"type": "array", "items": {"type": "string"}},
            "style": "form",
            "explode": True,
            "description": "Events of the subjects these customers pay for (their usage_from).",
        },
        {
            "name": "from",
            "in": "query",
            "schema": _TIME,
            "description": "Event time, inclusive. Default: 72 hours ago, unless id or ingestedAtFrom is given.",
        },
        {"name": "to", "in": "query", "schema": _TIME, "description": "Event time, exclusive."},
        {"name": "limit", "in": "query", "schema": or_empty({"type": "integer", "minimum": 1, "maximum": LIST_LIMIT})},
    ]
}


def _time(params: QueryParams, name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_time(raw)
    except ValueError as exc:
        raise ValidationError(f"'{name}' {exc}", field=name) from None


def parse_event_filter(params: QueryParams, now: datetime) -> tuple[EventFilter, tuple[str, ...]]:
    """GET /api/v1/events' query: the filter and the customers whose subjects it is narrowed to."""
    raw_limit = params.get("limit")
    limit = LIST_LIMIT
    if raw_limit:
        if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIST_LIMIT:
            raise ValidationError(f"limit must be an integer from 1 to {LIST_LIMIT}", field="limit")
        limit = int(raw_limit)
    start, end = _time(params, "from"), _time(params, "to")
    ingested_from, ingested_to = _time(params, "ingestedAtFrom"), _time(params, "ingestedAtTo")
    event_id = params.get("id") or None
    if start is None and event_id is None and ingested_from is None:
        start = now - DEFAULT_WINDOW
    for low, high, name in ((start, end, "to"), (ingested_from, ingested_to, "ingestedAtTo")):
        if low is not None and high is not None and high < low:
            raise ValidationError(f"'{name}' must not be before its start", field=name)
    subject = params.get("subject") or None
    where = EventFilter(
        start=start,
        end=end,
        ingested_from=ingested_from,
        ingested_to=ingested_to,
        event_id=event_id,
        subjects=(subject,) if subject is not None else None,
        limit=limit,
    )
    return where, tuple(c for c in params.getlist("customerId") if c)


def listed_json(row: ListedEvent) -> dict[str, Any]:
    """OpenMeter's IngestedEvent: the CloudEvent, when it was ingested and stored (the same moment here)."""
    at = format_time(row.ingested_at)
    return {"event": row.event.to_cloudevent(), "ingestedAt": at, "storedAt": at}
