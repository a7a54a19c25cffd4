"""/api/v1/subscriptions: a customer on a plan version; cancel, change and migrate (OpenMeter's shapes).

Status on the wire is OpenMeter's: active, inactive (ended), canceled (ends at a set time), scheduled.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from tollway.api.openapi import body_schema, problem_responses
from tollway.api.subscription_codec import (
    decode_cancel,
    decode_change,
    decode_migrate,
    decode_subscription,
    encode_subscription,
)
from tollway.api.wire import Json, parse_body
from tollway.billing.catalog.subscription_service import SubscriptionService
from tollway.billing.subscriptions import Subscription
from tollway.clock import Clock

_TIMING = "immediate, next_billing_cycle or an RFC 3339 time."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanRef(_Strict):
    key: str
    version: int | None = Field(None, description="Default: the published version.")


class SubscriptionCreate(_Strict):
    customerId: str | None = Field(None, description="This or customerKey.")
    customerKey: str | None = None
    plan: PlanRef
    timing: str | None = Field(None, description="immediate (default) or an RFC 3339 start.")
    activeFrom: str | None = Field(None, description="An RFC 3339 start (older OpenMeter clients).")
    billingAnchor: str | None = Field(None, description="Default: the start.")
    name: str | None = None
    description: str | None = None
    metadata: dict[str, str] | None = None


class CancelIn(_Strict):
    timing: str | Literal["immediate", "next_billing_cycle"] | None = Field(None, description=_TIMING)


class ChangeIn(_Strict):
    timing: str = Field(description=_TIMING)
    plan: PlanRef


class MigrateIn(_Strict):
    targetVersion: int | None = Field(None, description="Default: the published version.")
    timing: str | None = Field(None, description=_TIMING)


def subscriptions_router(service: SubscriptionService, clock: Clock) -> APIRouter:
    router = APIRouter(prefix="/api/v1/subscriptions", tags=["subscriptions"])

    def one(subscription: Subscription) -> Json:
        return encode_subscription(subscription, clock.now())

    def pair(current: Subscription, following: Subscription) -> Json:
        return {"current": one(current), "next": one(following)}

    async def optional_body(request: Request) -> object:
        raw = await request.body()
        return parse_body(raw) if raw.strip() else {}

    @router.post(
        "",
        summary="Subscribe a customer to a published plan",
        status_code=201,
        responses=problem_responses(400, 404, 409),
        openapi_extra=body_schema(SubscriptionCreate),
    )
    async def create_subscription(request: Request) -> Json:
        given = decode_subscription(parse_body(await request.body()))
        subscription = await service.create_subscription(
            customer=given.customer,
            plan_key=given.plan_key,
            plan_version=given.plan_version,
            active_from=given.active_from,
            billing_anchor=given.billing_anchor,
            name=given.name,
            description=given.description,
            metadata=given.metadata,
        )
        return one(subscription)

    @router.get("/{subscriptionId}", summary="Get a subscription", responses=problem_responses(404))
    async def get_subscription(subscriptionId: str) -> Json:
        return one(await service.subscription(subscriptionId))

    @router.post(
        "/{subscriptionId}/cancel",
        summary="Cancel a subscription",
        responses=problem_responses(400, 404, 409),
        openapi_extra=body_schema(CancelIn),
    )
    async def cancel_subscription(subscriptionId: str, request: Request) -> Json:
        timing = decode_cancel(await optional_body(request))
        return one(await service.cancel_subscription(subscriptionId, timing))

    @router.post(
        "/{subscriptionId}/change",
        summary="Change to another plan: ends this subscription and starts the next at the same instant",
        responses=problem_responses(400, 404, 409),
        openapi_extra=body_schema(ChangeIn),
    )
    async def change_subscription(subscriptionId: str, request: Request) -> Json:
        given = decode_change(parse_body(await request.body()))
        current, following = await service.change_subscription(
            subscriptionId, plan_key=given.plan_key, plan_version=given.plan_version, timing=given.timing
        )
        return pair(current, following)

    @router.post(
        "/{subscriptionId}/migrate",
        summary="Move to another version of the same plan",
        responses=problem_responses(400, 404, 409),
        openapi_extra=body_schema(MigrateIn),
    )
    async def migrate_subscription(subscriptionId: str, request: Request) -> dict[str, Any]:
        target_version, timing = decode_migrate(await optional_body(request))
        current, following = await service.migrate_subscription(
            subscriptionId, target_version=target_version, timing=timing
        )
        return pair(current, following)

    return router
