"""GET /api/v1/customers/{customerIdOrKey}/entitlements/{featureKey}/value: OpenMeter's entitlement value,
from the customer's active subscription."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tollway.api.customer_codec import encode_entitlement_value
from tollway.api.openapi import TIME, or_empty, problem_responses
from tollway.api.wire import Json, parse_moment
from tollway.billing.catalog.entitlement_service import EntitlementService


def entitlements_router(service: EntitlementService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/customers", tags=["entitlements"])

    @router.get(
        "/{customerIdOrKey}/entitlements/{featureKey}/value",
        summary="A customer's access to a feature: hasAccess, and for a metered one balance, usage, overage",
        responses=problem_responses(400, 404),
    )
    async def entitlement_value(
        customerIdOrKey: str,
        featureKey: str,
        time: Annotated[
            str | None, Query(description="RFC 3339; default now.", json_schema_extra=or_empty(TIME))
        ] = None,
    ) -> Json:
        at = parse_moment(time, "time") if time else None
        return encode_entitlement_value(await service.entitlement_value(customerIdOrKey, featureKey, at))

    return router
