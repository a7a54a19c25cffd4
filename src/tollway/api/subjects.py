"""GET /api/v1/subjects: every subject seen in an event (created on first sight)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tollway.errors import NotFoundError
from tollway.metering.events import format_time
from tollway.metering.ports import Subject
from tollway.metering.service import MeteringService


def subject_json(subject: Subject) -> dict[str, Any]:
    return {"id": subject.key, "key": subject.key, "displayName": None, "firstSeenAt": format_time(subject.first_seen)}


def subjects_router(service: MeteringService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/subjects", tags=["subjects"])

    @router.get("", summary="List subjects")
    async def list_subjects() -> list[dict[str, Any]]:
        return [subject_json(s) for s in await service.subjects()]

    @router.get("/{key}", summary="Get a subject")
    async def get_subject(key: str) -> dict[str, Any]:
        for subject in await service.subjects():
            if subject.key == key:
                return subject_json(subject)
        raise NotFoundError(f"subject {key!r} not found")

    return router
