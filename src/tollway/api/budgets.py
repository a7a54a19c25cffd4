"""/api/v1/budgets: spend control's budgets (money or tokens, on a customer, a consumer or an API key, per window)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tollway.api.openapi import problem_responses
from tollway.api.wire import BoundedJsonRoute
from tollway.metering.events import format_time
from tollway.money import decimal_text
from tollway.spend.budgets import Budget, BudgetStatus
from tollway.spend.budgets_service import BudgetService

Status = Callable[[Budget], Awaitable[BudgetStatus]]
_DECIMAL: dict[str, Any] = {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class BudgetCreate(_Body):
    key: str = Field(
        description="Unique: 1-64 of a-z, 0-9, '_' and '-'.",
        json_schema_extra={"pattern": "^[a-z0-9][a-z0-9_\\-]{0,63}$"},
    )
    name: str | None = None
    scope: Literal["customer", "consumer", "key"]
    target: str = Field(
        description="The customer's key, the consumer's username, or the API key's id.",
        json_schema_extra={"minLength": 1, "maxLength": 255},
    )
    kind: Literal["money", "tokens"]
    limit: str = Field(
        description="A decimal string: money in the customer's currency (USD without a plan), or tokens.",
        json_schema_extra=_DECIMAL,
    )
    window: Literal["billing_period", "month", "day", "hour", "lifetime"] = "billing_period"
    hard: bool = True
    on_exceeded: Literal["refuse", "degrade"] = Field(
        default="refuse",
        alias="onExceeded",
        description="A call that would not fit: refused, or degraded (max_tokens lowered, or routed to routeTo).",
    )
    route_to: str | None = Field(
        default=None, alias="routeTo", description="degrade: the cheaper model to route calls to."
    )
    on_redis_failure: Literal["open", "closed"] | None = Field(
        default=None,
        alias="onRedisFailure",
        description="Redis unreachable or slow: open admits calls unchecked, closed refuses them (503); "
        "null: the gateway's TOLLWAY_SPEND_REDIS_FAILURE.",
    )


class BudgetPatch(_Body):
    name: str | None = None
    scope: Literal["customer", "consumer", "key"] | None = None
    target: str | None = Field(default=None, json_schema_extra={"minLength": 1, "maxLength": 255})
    kind: Literal["money", "tokens"] | None = None
    limit: str | None = Field(default=None, json_schema_extra=_DECIMAL)
    window: Literal["billing_period", "month", "day", "hour", "lifetime"] | None = None
    hard: bool | None = None
    on_exceeded: Literal["refuse", "degrade"] | None = Field(default=None, alias="onExceeded")
    route_to: str | None = Field(default=None, alias="routeTo")
    on_redis_failure: Literal["open", "closed"] | None = Field(default=None, alias="onRedisFailure")


def budget_json(budget: Budget, status: BudgetStatus) -> dict[str, Any]:
    return {
        "id": budget.id,
        "key": budget.key,
        "name": budget.name,
        "scope": budget.scope,
        "target": budget.target,
        "kind": budget.kind,
        "limit": decimal_text(budget.limit),
        "window": budget.window,
        "hard": budget.hard,
        "onExceeded": budget.on_exceeded,
        "routeTo": budget.route_to,
        "onRedisFailure": budget.on_redis_failure,
        "managedBy": budget.managed_by,
        "currency": status.currency,
        "used": decimal_text(status.used),
        "reserved": decimal_text(status.reserved),
        "remaining": decimal_text(status.remaining),
        "windowStart": format_time(status.window_start),
        "resetsAt": format_time(status.resets_at) if status.resets_at is not None else None,
        "createdAt": format_time(budget.created_at) if budget.created_at is not None else None,
        "updatedAt": format_time(budget.updated_at) if budget.updated_at is not None else None,
    }


def budgets_router(service: BudgetService, status: Status) -> APIRouter:
    router = APIRouter(prefix="/api/v1/budgets", tags=["budgets"], route_class=BoundedJsonRoute)

    async def shown(budget: Budget) -> dict[str, Any]:
        return budget_json(budget, await status(budget))

    @router.get("", summary="List budgets, each with its current window's used, reserved and remaining")
    async def list_budgets() -> list[dict[str, Any]]:
        return [await shown(budget) for budget in await service.all()]

    @router.post("", summary="Create a budget", status_code=201, responses=problem_responses(400, 409))
    async def create_budget(body: BudgetCreate) -> dict[str, Any]:
        fields = body.model_dump(exclude_none=True)
        return await shown(await service.create(**fields))

    @router.get("/{budget}", summary="Get a budget (by id or key)", responses=problem_responses(404))
    async def get_budget(budget: str) -> dict[str, Any]:
        return await shown(await service.get(budget))

    @router.patch("/{budget}", summary="Change a budget", responses=problem_responses(400, 404, 409))
    async def patch_budget(budget: str, body: BudgetPatch) -> dict[str, Any]:
        changes = {name: getattr(body, name) for name in body.model_fields_set}
        return await shown(await service.update(budget, **changes))

    @router.delete("/{budget}", summary="Delete a budget", status_code=204, responses=problem_responses(404))
    async def delete_budget(budget: str) -> Response:
        await service.delete(budget)
        return Response(status_code=204)

    return router
