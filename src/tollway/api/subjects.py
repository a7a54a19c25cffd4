"""GET /api/v1/subjects: every subject seen in an event (created on first sight).

OpenMeter lists subjects as a bare array; so does Tollway when no `page`/`pageSize` is given, up to
MAX_UNPAGED_SUBJECTS (in key order; `X-Total-Count` and a `Link` to the next page say when there are more).
With `page` or `pageSize` the answer is OpenMeter's paginated envelope `{items, page, pageSize, totalCount}`.
Either way only the rows asked for are read, and the JSON is encoded by orjson (a large list encoded by the
framework held the event loop for seconds).
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from tollway.api.listing import PAGE_SCHEMA, PAGE_SIZE_SCHEMA, parse_page
from tollway.api.openapi import problem_responses
from tollway.metering.events import format_time
from tollway.metering.ports import Subject
from tollway.metering.service import MeteringService

MAX_UNPAGED_SUBJECTS = 10_000
SUBJECT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "key": {"type": "string"},
        "displayName": {"type": ["string", "null"]},
        "firstSeenAt": {"type": "string", "format": "date-time"},
    },
}
LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A bare array (no page or pageSize given, at most 10,000 subjects) or a page of them.",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"type": "array", "items": SUBJECT_SCHEMA},
                        {
                            "type": "object",
                            "required": ["items", "page", "pageSize", "totalCount"],
                            "properties": {
                                "items": {"type": "array", "items": SUBJECT_SCHEMA},
                                "page": {"type": "integer"},
                                "pageSize": {"type": "integer"},
                                "totalCount": {"type": "integer"},
                            },
                        },
                    ]
                }
            }
        },
    },
    **problem_responses(400),
}


def subject_json(subject: Subject) -> dict[str, Any]:
    return {"id": subject.key, "key": subject.key, "displayName": None, "firstSeenAt": format_time(subject.first_seen)}


def subjects_router(service: MeteringService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/subjects", tags=["subjects"])

    @router.get("", summary="List subjects", response_model=None, responses=LIST_RESPONSES)
    async def list_subjects(
        request: Request,
        page: Annotated[
            str | None,
            Query(description="With page or pageSize the answer is paginated.", json_schema_extra=PAGE_SCHEMA),
        ] = None,
        page_size: Annotated[str | None, Query(alias="pageSize", json_schema_extra=PAGE_SIZE_SCHEMA)] = None,
    ) -> Response:
        pages = parse_page(request.query_params)
        if pages.given:
            total, found = await asyncio.gather(
                service.count_subjects(), service.subjects((pages.page - 1) * pages.size, pages.size)
            )
            body: object = {
                "items": [subject_json(s) for s in found],
                "page": pages.page,
                "pageSize": pages.size,
                "totalCount": total,
            }
            return Response(orjson.dumps(body), media_type="application/json")
        found = await service.subjects(0, MAX_UNPAGED_SUBJECTS + 1)
        headers = {}
        if len(found) > MAX_UNPAGED_SUBJECTS:
            found = found[:MAX_UNPAGED_SUBJECTS]
            size = math.gcd(MAX_UNPAGED_SUBJECTS, 1000)  # pages of 1,000 start right after the 10,000 given
            following = MAX_UNPAGED_SUBJECTS // size + 1
            headers = {
                "X-Total-Count": str(await service.count_subjects()),
                "Link": f'</api/v1/subjects?page={following}&pageSize={size}>; rel="next"',
            }
        return Response(orjson.dumps([subject_json(s) for s in found]), media_type="application/json", headers=headers)

    @router.get("/{key}", summary="Get a subject")
    async def get_subject(key: str) -> dict[str, Any]:
        return subject_json(await service.subject(key))

    return router
