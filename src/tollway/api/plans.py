"""/api/v1/plans: versioned plans and their rate cards (OpenMeter's shapes).

Plan status on the wire is OpenMeter's: a published version is "active"; "draft" and "archived" as stored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tollway.api.listing import FLAG_SCHEMA, PAGE_SCHEMA, PAGE_SIZE_SCHEMA, items_of, paginated, parse_page
from tollway.api.openapi import body_schema, problem_responses
from tollway.api.plan_codec import PLAN_STATUS_WIRE, decode_plan, encode_plan
from tollway.api.wire import one_of, parse_body
from tollway.billing.catalog.plan_service import PlanService
from tollway.billing.plans import Plan
from tollway.errors import NotFoundError
from tollway.ids import looks_like_id

_DECIMAL = 'A decimal string, e.g. "0.000003".'


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UnitAmount(_Strict):
    type: Literal["unit"]
    amount: str = Field(description=_DECIMAL)


class FlatAmount(_Strict):
    type: Literal["flat"]
    amount: str = Field(description=_DECIMAL)


class PriceTierIn(_Strict):
    upToAmount: str | None = Field(None, description="Inclusive; absent on the last tier only.")
    unitPrice: UnitAmount | None = None
    flatPrice: FlatAmount | None = None


class PriceIn(_Strict):
    """One of: flat {amount, paymentTerm}; unit {amount}; tiered {mode, tiers}; package {amount,
    quantityPerPackage}; dynamic {multiplier}. Usage prices take minimumAmount / maximumAmount per period."""

    type: Literal["flat", "unit", "tiered", "package", "dynamic"]
    amount: str | None = Field(None, description=_DECIMAL)
    paymentTerm: Literal["in_advance", "in_arrears"] | None = None
    mode: Literal["graduated", "volume"] | None = None
    tiers: list[PriceTierIn] | None = None
    quantityPerPackage: str | None = None
    multiplier: str | None = None
    minimumAmount: str | None = None
    maximumAmount: str | None = None


class DiscountPercentageIn(_Strict):
    percentage: str | float = Field(description="0 to 100.")


class DiscountUsageIn(_Strict):
    quantity: str = Field(description="Free quantity, taken off first. " + _DECIMAL)


class DiscountsIn(_Strict):
    percentage: DiscountPercentageIn | None = None
    usage: DiscountUsageIn | None = None


class EntitlementTemplateIn(_Strict):
    """metered {isSoftLimit, issueAfterReset (the limit per usage period), usagePeriod}; boolean; static {config}."""

    type: Literal["metered", "boolean", "static"]
    isSoftLimit: bool | None = None
    issueAfterReset: str | float | None = None
    usagePeriod: str | None = Field(None, description="ISO-8601 duration; defaults to the billing cadence.")
    config: str | None = Field(None, description="Static: a JSON document, as a string.")


class RateCardIn(_Strict):
    type: Literal["flat_fee", "usage_based"]
    key: str
    name: str | None = None
    description: str | None = None
    metadata: dict[str, str] | None = None
    featureKey: str | None = None
    billingCadence: str | None = Field(None, description="ISO-8601 duration; a flat fee without one is one-time.")
    price: PriceIn | None = None
    discounts: DiscountsIn | None = None
    entitlementTemplate: EntitlementTemplateIn | None = None


class PhaseIn(_Strict):
    key: str
    name: str | None = None
    duration: str | None = Field(None, description="ISO-8601 duration; absent: until the end.")
    rateCards: list[RateCardIn]


class PlanUpdate(_Strict):
    name: str
    description: str | None = None
    metadata: dict[str, str] | None = None
    billingCadence: str = Field(description="ISO-8601 duration: P1M, P1Y, P1W, P1D, PT1H ...")
    phases: list[PhaseIn]


class PlanCreate(PlanUpdate):
    key: str
    currency: str = Field(description="ISO 4217 code.")


def plans_router(service: PlanService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/plans", tags=["plans"])

    @router.get("", summary="List plan versions", responses=problem_responses(400), response_model=None)
    async def list_plans(
        request: Request,
        key: Annotated[list[str] | None, Query()] = None,
        status: Annotated[
            list[str] | None, Query(json_schema_extra=items_of("draft", "active", "archived", "scheduled"))
        ] = None,
        plan_id: Annotated[list[str] | None, Query(alias="id")] = None,
        currency: Annotated[list[str] | None, Query()] = None,
        page: Annotated[str | None, Query(json_schema_extra=PAGE_SCHEMA)] = None,
        page_size: Annotated[str | None, Query(alias="pageSize", json_schema_extra=PAGE_SIZE_SCHEMA)] = None,
    ) -> dict[str, Any]:
        pages = parse_page(request.query_params)
        wanted = {one_of(s, ("draft", "active", "archived", "scheduled"), "status") for s in status or ()}
        plans = await service.plans()
        plans = [
            p
            for p in plans
            if (not key or p.key in key)
            and (not wanted or PLAN_STATUS_WIRE[p.status] in wanted)
            and (not plan_id or p.id in plan_id)
            and (not currency or p.currency in currency)
        ]
        return paginated(plans, pages, encode_plan)

    @router.post(
        "",
        summary="Create a plan (a new draft version)",
        status_code=201,
        responses=problem_responses(400, 404, 409),
        openapi_extra=body_schema(PlanCreate),
    )
    async def create_plan(request: Request) -> dict[str, Any]:
        given = decode_plan(parse_body(await request.body()), create=True)
        assert given.key is not None
        assert given.currency is not None
        plan = await service.create_plan(
            key=given.key,
            name=given.name,
            currency=given.currency,
            billing_cadence=given.billing_cadence,
            phases=given.phases,
            description=given.description,
            metadata=given.metadata,
        )
        return encode_plan(plan)

    @router.get("/{planId}", summary="Get a plan (by id, or by key)", responses=problem_responses(400, 404))
    async def get_plan(
        planId: str,
        version: Annotated[int | None, Query(ge=1, description="With a key: this version.")] = None,
        include_latest: Annotated[str | None, Query(alias="includeLatest", json_schema_extra=FLAG_SCHEMA)] = None,
    ) -> dict[str, Any]:
        if include_latest in ("true", "1") and version is None and not looks_like_id(planId):
            return encode_plan(await _latest(service, planId))
        return encode_plan(await service.plan(planId, version))

    @router.put(
        "/{planId}",
        summary="Replace a draft plan",
        responses=problem_responses(400, 404, 409),
        openapi_extra=body_schema(PlanUpdate),
    )
    async def update_plan(planId: str, request: Request) -> dict[str, Any]:
        given = decode_plan(parse_body(await request.body()), create=False)
        plan = await service.update_plan(
            await _draft_id(service, planId),
            name=given.name,
            billing_cadence=given.billing_cadence,
            phases=given.phases,
            description=given.description,
            metadata=given.metadata,
        )
        return encode_plan(plan)

    @router.delete(
        "/{planId}",
        summary="Delete a draft plan",
        status_code=204,
        response_class=Response,
        responses=problem_responses(404, 409),
    )
    async def delete_plan(planId: str) -> Response:
        await service.delete_plan(await _draft_id(service, planId))
        return Response(status_code=204)

    @router.post("/{planId}/publish", summary="Publish a draft", responses=problem_responses(400, 404, 409))
    async def publish_plan(planId: str) -> dict[str, Any]:
        return encode_plan(await service.publish_plan(await _draft_id(service, planId)))

    @router.post("/{planId}/archive", summary="Archive a plan version", responses=problem_responses(404, 409))
    async def archive_plan(planId: str) -> dict[str, Any]:
        return encode_plan(await service.archive_plan((await service.plan(planId)).id))

    @router.post(
        "/{planIdOrKey}/next",
        summary="A new draft version copied from the latest version",
        status_code=201,
        responses=problem_responses(404, 409),
    )
    async def next_version(planIdOrKey: str) -> dict[str, Any]:
        key = (await service.plan(planIdOrKey)).key
        latest = await _latest(service, key)
        plan = await service.create_plan(
            key=latest.key,
            name=latest.name,
            currency=latest.currency,
            billing_cadence=latest.billing_cadence,
            phases=latest.phases,
            description=latest.description,
            metadata=latest.metadata,
        )
        return encode_plan(plan)

    return router


async def _latest(service: PlanService, key: str) -> Plan:
    versions = await service.plans(key=key)
    if not versions:
        raise NotFoundError(f"plan {key!r} not found", field="planId")
    return max(versions, key=lambda p: p.version)


async def _draft_id(service: PlanService, id_or_key: str) -> str:
    """The plan version an edit addresses: by id; by key, the key's draft if it has one."""
    if not looks_like_id(id_or_key):
        drafts = [p for p in await service.plans(key=id_or_key) if p.status == "draft"]
        if drafts:
            return drafts[0].id
    return (await service.plan(id_or_key)).id
