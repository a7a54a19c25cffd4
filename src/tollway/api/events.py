"""POST /api/v1/events: CloudEvents 1.0 ingestion (OpenMeter's shape; its SDK expects 204 No Content).

`application/cloudevents+json` carries one event, `application/cloudevents-batch+json` an array,
`application/json` either. A request is all-or-nothing: any invalid event answers 400 with one
error per field and stores nothing. Events already stored (same source and id) are accepted and
skipped. Headers report what happened: `Tollway-Events-Received` and `Tollway-Events-Stored`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tollway import bounded_json
from tollway.api.openapi import TEXT_255, TIME, problem_responses
from tollway.errors import TooLargeError, UnsupportedMediaTypeError, ValidationError
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
        declared = request.headers.get("content-length")
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > max_body_bytes:
            raise TooLargeError(f"the body is over {max_body_bytes} bytes; send smaller batches")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > max_body_bytes:
                raise TooLargeError(f"the body is over {max_body_bytes} bytes; send smaller batches")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
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
        received, stored = await service.ingest(parsed)  # EventValidationError: one problem per field
        return Response(
            status_code=204, headers={"Tollway-Events-Received": str(received), "Tollway-Events-Stored": str(stored)}
        )

    return router
