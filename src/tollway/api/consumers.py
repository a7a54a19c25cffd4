"""/api/v1/consumers: gateway identities and their API keys (the plain key is returned once, at creation)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.responses import Response

from tollway.api.openapi import problem_responses
from tollway.api.wire import BoundedJsonRoute
from tollway.identity.consumers import (
    MAX_METADATA_ENTRIES,
    MAX_METADATA_TEXT,
    USERNAME_PATTERN,
    USERNAME_RULE,
    Consumer,
)
from tollway.identity.keys import MAX_NAME_CHARS, ApiKey
from tollway.identity.service import UNSET, ConsumerSummary, IdentityService
from tollway.metering.events import format_time


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


# Schema-only constraints (json_schema_extra): the service checks them, naming the field in its own words.
_MODELS: dict[str, Any] = {"items": {"minLength": 1}}
_METADATA: dict[str, Any] = {
    "maxProperties": MAX_METADATA_ENTRIES,
    "propertyNames": {"minLength": 1, "maxLength": MAX_METADATA_TEXT},
    "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_TEXT},
}


class ConsumerCreate(_Body):
    username: str = Field(description=USERNAME_RULE, json_schema_extra={"pattern": USERNAME_PATTERN})
    models: list[str] | None = Field(
        default=None,
        description="Models of the running configuration the consumer may use; absent: every model.",
        json_schema_extra=_MODELS,
    )
    metadata: dict[str, str] | None = Field(default=None, json_schema_extra=_METADATA)


class ConsumerPatch(_Body):
    models: list[str] | None = Field(default=None, description="null: every model.", json_schema_extra=_MODELS)
    metadata: dict[str, str] | None = Field(
        default=None, description="Replaces the metadata.", json_schema_extra=_METADATA
    )


class KeyCreate(_Body):
    name: str | None = Field(
        default=None, json_schema_extra={"minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": "\\S"}
    )
    expires_at: AwareDatetime | None = Field(default=None, alias="expiresAt", description="RFC 3339, in the future.")
    models: list[str] | None = Field(
        default=None, description="A subset of the consumer's; absent: the consumer's.", json_schema_extra=_MODELS
    )
    key: str | None = Field(
        default=None,
        description="A key the consumer already holds (moved from another gateway), 8-256 visible ASCII characters; "
        "absent: one is generated. Stored as a digest like any key, never shown again.",
        json_schema_extra={"minLength": 8, "maxLength": 256, "pattern": "^[!-~]+$"},
    )


def consumer_json(summary: ConsumerSummary) -> dict[str, Any]:
    consumer: Consumer = summary.consumer
    return {
        "username": consumer.username,
        "managedBy": consumer.managed_by,
        "models": sorted(consumer.models) if consumer.models is not None else None,
        "metadata": dict(consumer.metadata),
        "createdAt": format_time(consumer.created_at),
        "updatedAt": format_time(consumer.updated_at),
        "keyCount": summary.key_count,
    }


def key_json(key: ApiKey) -> dict[str, Any]:
    """A key's metadata: never its plain text or its digest."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "managedBy": key.managed_by,
        "createdAt": format_time(key.created_at),
        "lastUsedDay": key.last_used_day.isoformat() if key.last_used_day is not None else None,
        "expiresAt": format_time(key.expires_at) if key.expires_at is not None else None,
        "revokedAt": format_time(key.revoked_at) if key.revoked_at is not None else None,
        "models": sorted(key.models) if key.models is not None else None,
    }


def consumers_router(service: IdentityService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/consumers", tags=["consumers"], route_class=BoundedJsonRoute)

    @router.get("", summary="List consumers")
    async def list_consumers() -> list[dict[str, Any]]:
        return [consumer_json(s) for s in await service.list_consumers()]

    @router.post("", summary="Create a consumer", status_code=201, responses=problem_responses(400, 409))
    async def create_consumer(body: ConsumerCreate) -> dict[str, Any]:
        consumer = await service.create_consumer(body.username, models=body.models, metadata=body.metadata)
        return consumer_json(ConsumerSummary(consumer, 0))

    @router.get("/{username}", summary="Get a consumer", responses=problem_responses(404))
    async def get_consumer(username: str) -> dict[str, Any]:
        return consumer_json(await service.consumer(username))

    @router.patch(
        "/{username}", summary="Change a consumer's models or metadata", responses=problem_responses(400, 404, 409)
    )
    async def patch_consumer(username: str, body: ConsumerPatch) -> dict[str, Any]:
        given = body.model_fields_set
        await service.update_consumer(
            username,
            models=body.models if "models" in given else UNSET,
            metadata=body.metadata if "metadata" in given else UNSET,
        )
        return consumer_json(await service.consumer(username))

    @router.delete(
        "/{username}",
        summary="Delete a consumer (its keys are revoked)",
        status_code=204,
        responses=problem_responses(404, 409),
    )
    async def delete_consumer(username: str) -> Response:
        await service.delete_consumer(username)
        return Response(status_code=204)

    @router.post(
        "/{username}/keys",
        summary="Create an API key (the key is shown in this response only)",
        status_code=201,
        responses=problem_responses(400, 404, 409),
    )
    async def create_key(username: str, body: KeyCreate) -> dict[str, Any]:
        created = await service.create_key(
            username, name=body.name, expires_at=body.expires_at, models=body.models, value=body.key
        )
        shown = key_json(created.key)
        return {
            "id": shown["id"],
            "name": shown["name"],
            "prefix": shown["prefix"],
            "key": created.plain,
            "createdAt": shown["createdAt"],
            "expiresAt": shown["expiresAt"],
            "models": shown["models"],
        }

    @router.get(
        "/{username}/keys", summary="List a consumer's API keys (metadata only)", responses=problem_responses(404)
    )
    async def list_keys(username: str) -> list[dict[str, Any]]:
        return [key_json(k) for k in await service.keys(username)]

    @router.delete(
        "/{username}/keys/{key_id}",
        summary="Revoke an API key (idempotent)",
        status_code=204,
        responses=problem_responses(404, 409),
    )
    async def revoke_key(username: str, key_id: str) -> Response:
        await service.revoke_key(username, key_id)
        return Response(status_code=204)

    return router
