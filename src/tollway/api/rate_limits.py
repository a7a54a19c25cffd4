"""/api/v1/rate-limits: spend control's rate limits (requests, tokens or cost per minute, hour or day, or requests
in flight; on a consumer, an API key, a customer or a model, or on each of them with target "*")."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tollway.api.openapi import problem_responses
from tollway.api.wire import BoundedJsonRoute
from tollway.metering.events import format_time
from tollway.money import decimal_text
from tollway.spend.rate_limits import RateLimit
from tollway.spend.rate_limits_service import RateLimitService

_DECIMAL: dict[str, Any] = {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}
Scope = Literal["consumer", "key", "customer", "model"]
Metric = Literal["requests", "tokens", "input_tokens", "output_tokens", "cost", "in_flight"]
Window = Literal["minute", "hour", "day"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class RateLimitCreate(_Body):
    key: str = Field(
        description="Unique: 1-64 of a-z, 0-9, '_' and '-'.",
        json_schema_extra={"pattern": "^[a-z0-9][a-z0-9_\\-]{0,63}$"},
    )
    name: str | None = None
    scope: Scope
    target: str = Field(
        description="The consumer's username, the API key's id, the customer's key or the model's name; '*': each.",
        json_schema_extra={"minLength": 1, "maxLength": 255},
    )
    metric: Metric
    limit: str = Field(
        description="A decimal string: a whole number, or money (cost) in the customer's currency (USD without one).",
        json_schema_extra=_DECIMAL,
    )
    window: Window | None = Field(default=None, description="minute (the default), hour or day; none for in_flight.")
    on_redis_failure: Literal["open", "closed"] | None = Field(
        default=None,
        alias="onRedisFailure",
        description="Redis unreachable or slow: open admits calls unchecked, closed refuses them (503); "
        "null: the gateway's TOLLWAY_SPEND_REDIS_FAILURE.",
    )


class RateLimitPatch(_Body):
    name: str | None = None
    scope: Scope | None = None
    target: str | None = Field(default=None, json_schema_extra={"minLength": 1, "maxLength": 255})
    metric: Metric | None = None
    limit: str | None = Field(default=None, json_schema_extra=_DECIMAL)
    window: Window | None = None
    on_redis_failure: Literal["open", "closed"] | None = Field(default=None, alias="onRedisFailure")


def rate_limit_json(limit: RateLimit) -> dict[str, Any]:
    return {
        "id": limit.id,
        "key": limit.key,
        "name": limit.name,
        "scope": limit.scope,
        "target": limit.target,
        "metric": limit.metric,
        "limit": decimal_text(limit.limit),
        "window": limit.window,
        "onRedisFailure": limit.on_redis_failure,
        "managedBy": limit.managed_by,
        "createdAt": format_time(limit.created_at) if limit.created_at is not None else None,
        "updatedAt": format_time(limit.updated_at) if limit.updated_at is not None else None,
    }


def rate_limits_router(service: RateLimitService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/rate-limits", tags=["rate limits"], route_class=BoundedJsonRoute)

    @router.get("", summary="List rate limits")
    async def list_rate_limits() -> list[dict[str, Any]]:
        return [rate_limit_json(limit) for limit in await service.all()]

    @router.post("", summary="Create a rate limit", status_code=201, responses=problem_responses(400, 409))
    async def create_rate_limit(body: RateLimitCreate) -> dict[str, Any]:
        fields = body.model_dump(exclude_none=True)
        return rate_limit_json(await service.create(**fields))

    @router.get("/{limit}", summary="Get a rate limit (by id or key)", responses=problem_responses(404))
    async def get_rate_limit(limit: str) -> dict[str, Any]:
        return rate_limit_json(await service.get(limit))

    @router.patch("/{limit}", summary="Change a rate limit", responses=problem_responses(400, 404, 409))
    async def patch_rate_limit(limit: str, body: RateLimitPatch) -> dict[str, Any]:
        changes = {name: getattr(body, name) for name in body.model_fields_set}
        return rate_limit_json(await service.update(limit, **changes))

    @router.delete("/{limit}", summary="Delete a rate limit", status_code=204, responses=problem_responses(404))
    async def delete_rate_limit(limit: str) -> Response:
        await service.delete(limit)
        return Response(status_code=204)

    return router
