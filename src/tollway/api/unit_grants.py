"""OpenMeter's grants on a metered entitlement: POST|GET /api/v1/customers/{customerIdOrKey}/entitlements/
{featureKey}/grants (and /api/v2/..., the path the openmeter SDK's customer calls use; and the v1
subject-scoped /api/v1/subjects/{subjectIdOrKey}/entitlements/{featureKey}/grants), DELETE /api/v1/grants/
{grantId} (void), GET .../entitlements/{featureKey}/history?windowSize= (burn-down segments with
grantUsages) and POST .../entitlements/{featureKey}/reset (a new usage period). Quantities travel as decimal strings."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from tollway.api.openapi import body_schema, problem_responses
from tollway.api.wire import Json, Obj, optional_time, parse_body, parse_moment
from tollway.billing.catalog.unit_grant_service import History, NewUnitGrant, UnitGrantService
from tollway.billing.grants.burndown import Segment
from tollway.billing.grants.model import UnitGrant
from tollway.metering.events import format_time
from tollway.money import decimal_text

FIELDS = (
    "amount",
    "priority",
    "effectiveAt",
    "expiration",
    "minRolloverAmount",
    "maxRolloverAmount",
    "recurrence",
    "metadata",
    "annotations",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExpirationIn(_Strict):
    duration: str = Field(json_schema_extra={"enum": ["HOUR", "DAY", "WEEK", "MONTH", "YEAR"]})
    count: int = Field(ge=1)


class RecurrenceIn(_Strict):
    interval: str = Field(json_schema_extra={"enum": ["DAY", "WEEK", "MONTH", "YEAR"]})
    anchor: str | None = Field(None, description="RFC 3339.")


class UnitGrantIn(_Strict):
    """OpenMeter's grant on a metered entitlement (the described body; the route decodes it, naming the field)."""

    amount: float = Field(ge=0, description="Units (the route reads it exactly, as a decimal).")
    effectiveAt: str = Field(description="RFC 3339.")
    priority: int | None = Field(None, ge=1, le=255)
    expiration: ExpirationIn | None = None
    minRolloverAmount: float | None = Field(None, ge=0)
    maxRolloverAmount: float | None = Field(None, ge=0)
    recurrence: RecurrenceIn | None = None
    metadata: dict[str, str] | None = None


class ResetIn(_Strict):
    """OpenMeter's reset of an entitlement's usage (every field optional; the body may be left out)."""

    effectiveAt: str | None = Field(None, description="RFC 3339; default now. Not in the future, after the last reset.")
    retainAnchor: bool | None = Field(None, description="Keep the usage period's anchor (default false).")
    preserveOverage: bool | None = Field(None, description="Carry the ended period's overage (default false).")


def decode_unit_grant(body: object) -> NewUnitGrant:
    obj = Obj(body, "", FIELDS)
    effective = obj.time("effectiveAt")
    if effective is None:
        raise obj.error("effectiveAt", "is required")
    priority = obj.get("priority")
    if priority is None:
        priority = 1
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 255:
        raise obj.error("priority", f"must be an integer from 1 to 255, got {priority!r}")
    expiration = obj.obj("expiration", {"duration", "count"})
    duration = count = None
    if expiration is not None:
        duration = expiration.req_text("duration")
        count = expiration.integer("count")
        if count is None:
            raise expiration.error("count", "is required")
    recurrence = obj.obj("recurrence", {"interval", "anchor"})
    interval = anchor = None
    if recurrence is not None:
        interval = recurrence.req_text("interval")
        anchor = recurrence.time("anchor")
    return NewUnitGrant(
        amount=obj.req_decimal("amount"),
        effective_at=effective,
        priority=priority,
        expiration_duration=duration,
        expiration_count=count,
        min_rollover=obj.decimal("minRolloverAmount") or Decimal(0),
        max_rollover=obj.decimal("maxRolloverAmount"),
        recurrence_interval=interval,
        recurrence_anchor=anchor,
        metadata=obj.metadata(),
    )


def grant_json(grant: UnitGrant) -> Json:
    expiration = (
        {"duration": grant.expiration_duration, "count": grant.expiration_count}
        if grant.expiration_duration is not None
        else None
    )
    recurrence = (
        {"interval": grant.recurrence_interval, "anchor": optional_time(grant.recurrence_anchor)}
        if grant.recurrence_interval is not None
        else None
    )
    return {
        "id": grant.id,
        "entitlementId": f"{grant.customer_id}:{grant.feature_key}",
        "featureKey": grant.feature_key,
        "amount": decimal_text(grant.amount),
        "priority": grant.priority,
        "effectiveAt": format_time(grant.effective_at),
        "expiration": expiration,
        "expiresAt": optional_time(grant.expires_at),
        "minRolloverAmount": decimal_text(grant.min_rollover),
        "maxRolloverAmount": decimal_text(grant.rollover_cap),
        "recurrence": recurrence,
        "metadata": grant.metadata,
        "createdAt": format_time(grant.created_at),
        "updatedAt": format_time(grant.voided_at or grant.created_at),
        "voidedAt": optional_time(grant.voided_at),
        "deletedAt": None,
    }


def _segment_json(s: Segment) -> Json:
    return {
        "period": {"from": format_time(s.start), "to": format_time(s.end)},
        "usage": decimal_text(s.usage),
        "overage": decimal_text(s.overage),
        "balanceAtStart": decimal_text(s.balance_at_start),
        "balanceAtEnd": decimal_text(s.balance_at_end),
        "grantBalancesAtStart": {k: decimal_text(v) for k, v in s.grant_balances_at_start.items()},
        "grantBalancesAtEnd": {k: decimal_text(v) for k, v in s.grant_balances_at_end.items()},
        "grantUsages": [{"grantId": k, "usage": decimal_text(v)} for k, v in s.grant_usages.items()],
    }


def history_json(history: History) -> Json:
    return {
        "windowedHistory": [
            {
                "period": {"from": format_time(w.start), "to": format_time(w.end)},
                "usage": decimal_text(w.usage),
                "balanceAtStart": decimal_text(w.balance_at_start),
            }
            for w in history.windows
        ],
        "burndownHistory": [_segment_json(s) for s in history.segments],
    }


def unit_grants_router(service: UnitGrantService) -> APIRouter:
    router = APIRouter(tags=["entitlements"])

    async def create(customer: str, feature: str, request: Request) -> Response:
        grant = await service.create(customer, feature, decode_unit_grant(parse_body(await request.body())))
        return JSONResponse(grant_json(grant), status_code=201)

    for version in ("v1", "v2"):
        base = f"/api/{version}/customers/{{customerIdOrKey}}/entitlements/{{featureKey}}"

        @router.post(
            f"{base}/grants",
            summary=f"Grant units to a customer's metered entitlement ({version})",
            status_code=201,
            responses=problem_responses(400, 404),
            openapi_extra=body_schema(UnitGrantIn),
        )
        async def create_grant(customerIdOrKey: str, featureKey: str, request: Request) -> Response:
            return await create(customerIdOrKey, featureKey, request)

        @router.get(
            f"{base}/history",
            summary=f"The entitlement's burn-down history ({version})",
            responses=problem_responses(400, 404),
        )
        async def history(customerIdOrKey: str, featureKey: str, request: Request) -> Json:
            params = request.query_params
            window = params.get("windowSize") or "DAY"
            start = parse_moment(params["from"], "from") if params.get("from") else None
            end = parse_moment(params["to"], "to") if params.get("to") else None
            found = await service.history(customerIdOrKey, featureKey, window_size=window, start=start, end=end)
            return history_json(found)

        @router.post(
            f"{base}/reset",
            summary=f"Reset the entitlement's usage: a new usage period from effectiveAt ({version})",
            status_code=204,
            responses=problem_responses(400, 404),
            openapi_extra=body_schema(ResetIn),
        )
        async def reset(customerIdOrKey: str, featureKey: str, request: Request) -> Response:
            raw = await request.body()
            obj = Obj(parse_body(raw) if raw.strip() else {}, "", ("effectiveAt", "retainAnchor", "preserveOverage"))
            await service.reset(
                customerIdOrKey,
                featureKey,
                effective_at=obj.time("effectiveAt"),
                retain_anchor=obj.boolean("retainAnchor", False),
                preserve_overage=obj.boolean("preserveOverage", False),
            )
            return Response(status_code=204)

    @router.get(
        "/api/v1/customers/{customerIdOrKey}/entitlements/{featureKey}/grants",
        summary="A customer's grants on a metered entitlement",
        responses=problem_responses(404),
    )
    async def list_grants(customerIdOrKey: str, featureKey: str) -> list[Json]:
        return [grant_json(g) for g in await service.list(customerIdOrKey, featureKey)]

    @router.get(
        "/api/v2/customers/{customerIdOrKey}/entitlements/{featureKey}/grants",
        summary="A customer's grants on a metered entitlement (v2: one page)",
        responses=problem_responses(404),
    )
    async def list_grants_v2(customerIdOrKey: str, featureKey: str) -> Json:
        items = [grant_json(g) for g in await service.list(customerIdOrKey, featureKey)]
        return {"items": items, "page": 1, "pageSize": max(len(items), 1), "totalCount": len(items)}

    @router.post(
        "/api/v1/subjects/{subjectIdOrKey}/entitlements/{featureKey}/grants",
        summary="Grant units to the metered entitlement of the customer paying for a subject",
        status_code=201,
        responses=problem_responses(400, 404),
        openapi_extra=body_schema(UnitGrantIn),
    )
    async def create_subject_grant(subjectIdOrKey: str, featureKey: str, request: Request) -> Response:
        return await create(await service.customer_of_subject(subjectIdOrKey), featureKey, request)

    @router.get(
        "/api/v1/subjects/{subjectIdOrKey}/entitlements/{featureKey}/grants",
        summary="Grants of the customer paying for a subject",
        responses=problem_responses(404),
    )
    async def list_subject_grants(subjectIdOrKey: str, featureKey: str) -> list[Json]:
        customer = await service.customer_of_subject(subjectIdOrKey)
        return [grant_json(g) for g in await service.list(customer, featureKey)]

    @router.delete(
        "/api/v1/grants/{grantId}", summary="Void a grant", status_code=204, responses=problem_responses(404)
    )
    async def void_grant(grantId: str) -> Response:
        await service.void(grantId)
        return Response(status_code=204)

    return router
