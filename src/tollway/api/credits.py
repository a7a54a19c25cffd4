"""/api/v1/customers/{customerIdOrKey}/credits: money credit grants (create, list, get, void), the balance
(live / settled / pending) and the ledger of transactions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from tollway.api.credit_codec import balance_json, decode_grant, grant_json, transaction_json
from tollway.api.openapi import NON_BLANK, body_schema, problem_responses
from tollway.api.wire import Json, Obj, parse_body
from tollway.billing.credit_accounts.service import CreditService
from tollway.billing.credits.model import RechargeRule
from tollway.errors import NotFoundError
from tollway.money import decimal_text, from_minor_units

_DECIMAL: dict[str, Any] = {"pattern": r"^[0-9]+(\.[0-9]+)?$"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FiltersIn(_Strict):
    features: list[str] | None = Field(None, description="Feature keys whose lines the grant pays; absent: every line.")


class CreditGrantIn(_Strict):
    name: str = Field(json_schema_extra=NON_BLANK)
    amount: str = Field(
        description="Decimal string in the currency (exact to its minor unit).", json_schema_extra=_DECIMAL
    )
    currency: str | None = Field(None, description="ISO 4217; default: the customer's.")
    fundingMethod: str | None = Field(None, json_schema_extra={"enum": ["none", "invoice", "external"]})
    priority: int | None = Field(None, ge=1, le=255, description="Lower pays first (default 1).")
    effectiveAt: str | None = Field(None, description="RFC 3339; default now.")
    expiresAfter: str | None = Field(None, description="ISO-8601 duration from effectiveAt (P1M).")
    key: str | None = Field(None, description="Idempotency key: a repeat answers the same grant; other values: 409.")
    filters: FiltersIn | None = None
    price: str | None = Field(
        None, description="fundingMethod invoice: what the top-up invoice charges.", json_schema_extra=_DECIMAL
    )
    metadata: dict[str, str] | None = None


def credits_router(credits: CreditService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/customers/{customerIdOrKey}/credits", tags=["credits"])

    @router.post(
        "/grants",
        summary="Grant money credits to a customer (201; 200 for a repeat of an idempotency key)",
        status_code=201,
        responses=problem_responses(400, 404, 409),
        openapi_extra=body_schema(CreditGrantIn),
    )
    async def create_grant(customerIdOrKey: str, request: Request) -> Any:
        grant, created = await credits.create(customerIdOrKey, decode_grant(parse_body(await request.body())))
        return JSONResponse(grant_json(grant), status_code=201 if created else 200)

    @router.get("/grants", summary="A customer's money credit grants, oldest first", responses=problem_responses(404))
    async def list_grants(customerIdOrKey: str) -> list[Json]:
        return [grant_json(g) for g in await credits.grants(customerIdOrKey)]

    @router.get("/grants/{grantId}", summary="One money credit grant", responses=problem_responses(404))
    async def get_grant(customerIdOrKey: str, grantId: str) -> Json:
        return grant_json(await credits.get(customerIdOrKey, grantId))

    @router.post(
        "/grants/{grantId}/void",
        summary="Void a grant: what is left of it is taken off by a ledger row",
        responses=problem_responses(404, 409),
    )
    async def void_grant(customerIdOrKey: str, grantId: str) -> Json:
        return grant_json(await credits.void(customerIdOrKey, grantId))

    @router.get(
        "/balance",
        summary="live (after the open period's usage so far), settled (after issued invoices), pending (not paid)",
        responses=problem_responses(400, 404),
    )
    async def balance(customerIdOrKey: str) -> Json:
        found = balance_json(await credits.balance(customerIdOrKey))
        await credits.check_recharge(customerIdOrKey)  # a balance read below the threshold tops up (once)
        return found

    @router.get("/transactions", summary="The credit ledger, oldest first", responses=problem_responses(404))
    async def transactions(customerIdOrKey: str) -> list[Json]:
        return [transaction_json(r) for r in await credits.transactions(customerIdOrKey)]

    return router


def recharge_json(rule: RechargeRule) -> Json:
    def money(minor: int | None) -> str | None:
        return None if minor is None else decimal_text(from_minor_units(minor, rule.currency))

    return {
        "currency": rule.currency,
        "threshold": money(rule.threshold_minor),
        "rechargeTo": money(rule.recharge_to_minor),
        "amount": money(rule.amount_minor),
        "armed": rule.armed,
        "recharges": rule.crossings,
    }


class RechargeIn(_Strict):
    """Exactly one of rechargeTo (top up to this balance) and amount (a fixed top-up)."""

    threshold: str = Field(description="Below this live balance, one top-up per crossing.", json_schema_extra=_DECIMAL)
    rechargeTo: str | None = Field(None, json_schema_extra=_DECIMAL)
    amount: str | None = Field(None, json_schema_extra=_DECIMAL)
    currency: str | None = Field(None, description="ISO 4217; default: the customer's.")


def recharge_router(credits: CreditService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/customers/{customerIdOrKey}/credits/auto-recharge", tags=["credits"])

    @router.put(
        "",
        summary="Set auto-recharge: below threshold, one top-up (rechargeTo or a fixed amount) per crossing",
        responses=problem_responses(400, 404),
        openapi_extra=body_schema(RechargeIn),
    )
    async def set_recharge(customerIdOrKey: str, request: Request) -> Json:
        obj = Obj(parse_body(await request.body()), "", {"threshold", "rechargeTo", "amount", "currency"})
        rule = await credits.set_recharge(
            customerIdOrKey,
            threshold=obj.req_decimal("threshold"),
            recharge_to=obj.decimal("rechargeTo"),
            amount=obj.decimal("amount"),
            currency=obj.currency(),
        )
        return recharge_json(rule)

    @router.get("", summary="The customer's auto-recharge rule", responses=problem_responses(404))
    async def get_recharge(customerIdOrKey: str) -> Json:
        rule = await credits.recharge_rule(customerIdOrKey)
        if rule is None:
            raise NotFoundError("no auto-recharge rule for this customer", field="customerIdOrKey")
        return recharge_json(rule)

    @router.delete("", summary="Stop auto-recharge", status_code=204, responses=problem_responses(404))
    async def delete_recharge(customerIdOrKey: str) -> Response:
        await credits.delete_recharge(customerIdOrKey)
        return Response(status_code=204)

    return router
