"""/api/v1/portal: consumer portal tokens (OpenMeter's shapes) and the meter query a portal token may ask.

`POST /portal/tokens` ({subject} as OpenMeter, or Tollway's {customer}; optional expiresAt and allowedMeterSlugs)
answers the token once; `POST /portal/tokens/invalidate` ({id} or {subject}, or Tollway's {customer}; neither: all)
ends tokens; `GET /portal/meters/{slug}/query` takes `Authorization: Bearer <portal token>` (not the admin token:
AdminGate leaves that path to this router) and answers the meter query narrowed to the token's subject or
customer, whatever subject the query names."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from tollway import bounded_json
from tollway.api.meters import QUERY_PARAMETERS, parse_meter_query, row_json
from tollway.api.openapi import problem_responses
from tollway.errors import NotFoundError, UnauthenticatedError, ValidationError
from tollway.metering.events import format_time, parse_time
from tollway.metering.service import MeteringService
from tollway.portal.tokens import PortalToken, PortalTokens

PORTAL_QUERY_PREFIX = "/api/v1/portal/meters/"
TOKEN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "subject": {"type": "string", "minLength": 1, "maxLength": 255},
                        "customer": {"type": "string", "minLength": 1, "description": "Tollway: a customer id or key"},
                        "expiresAt": {"type": "string", "format": "date-time"},
                        "allowedMeterSlugs": {
                            "type": "array",
                            "items": {"type": "string", "minLength": 1},
                            "maxItems": 32,
                        },
                    },
                }
            }
        },
    }
}
INVALIDATE_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": ["string", "null"]},
                        "subject": {"type": ["string", "null"]},
                        "customer": {"type": ["string", "null"], "description": "Tollway: a customer id or key"},
                    },
                }
            }
        },
    }
}
PORTAL_QUERY = {
    **QUERY_PARAMETERS,
    "security": [],
    "description": "Authenticated with a portal token (`Authorization: Bearer <token>`), not the admin token.",
}


def token_json(token: PortalToken, *, plain: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": token.id,
        "subject": token.subject if token.subject is not None else f"customer:{token.customer_key}",
        "expiresAt": format_time(token.expires_at),
        "expired": token.invalidated_at is not None,
        "createdAt": format_time(token.created_at),
    }
    if token.customer_key is not None:
        body["customer"] = token.customer_key
    if token.allowed_meters is not None:
        body["allowedMeterSlugs"] = list(token.allowed_meters)
    if plain is not None:
        body["token"] = plain
    return body


async def _object(request: Request, *, required: bool = True) -> dict[str, Any]:
    raw = await request.body()
    if not raw and not required:
        return {}
    body = bounded_json.decode(raw, nul=False)
    if not isinstance(body, dict):
        raise ValidationError("expected a JSON object", field="body")
    return body


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", field=name)
    return value


def portal_admin_router(tokens: PortalTokens) -> APIRouter:
    router = APIRouter(prefix="/api/v1/portal", tags=["portal"])

    @router.post(
        "/tokens",
        summary="Create a consumer portal token",
        responses=problem_responses(400, 404),
        openapi_extra=TOKEN_BODY,
    )
    async def create_token(request: Request) -> dict[str, Any]:
        body = await _object(request)
        unknown = set(body) - {"subject", "customer", "expiresAt", "allowedMeterSlugs"}
        if unknown:
            raise ValidationError(f"unknown fields: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
        expires = _text(body, "expiresAt")
        try:
            expires_at = parse_time(expires) if expires else None
        except ValueError as exc:
            raise ValidationError(f"expiresAt {exc}", field="expiresAt") from None
        meters = body.get("allowedMeterSlugs")
        if meters is not None and not isinstance(meters, list):
            raise ValidationError("allowedMeterSlugs must be a list of meter slugs", field="allowedMeterSlugs")
        created = await tokens.create(
            subject=_text(body, "subject"),
            customer=_text(body, "customer"),
            expires_at=expires_at,
            allowed_meters=meters,
        )
        return token_json(created.token, plain=created.plain)

    @router.get("/tokens", summary="List consumer portal tokens (newest first)")
    async def list_tokens(
        limit: Annotated[int, Query(json_schema_extra={"minimum": 1, "maximum": 100})] = 25,
    ) -> list[dict[str, Any]]:
        if not 1 <= limit <= 100:
            raise ValidationError("limit is 1 to 100", field="limit")
        return [token_json(t) for t in await tokens.list(limit)]

    @router.post(
        "/tokens/invalidate",
        summary="Invalidate portal tokens",
        status_code=204,
        response_class=Response,
        responses=problem_responses(400, 404),
        openapi_extra=INVALIDATE_BODY,
    )
    async def invalidate(request: Request) -> Response:
        body = await _object(request, required=False)
        unknown = set(body) - {"id", "subject", "customer"}
        if unknown:
            raise ValidationError(f"unknown fields: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
        await tokens.invalidate(
            token_id=_text(body, "id"), subject=_text(body, "subject"), customer=_text(body, "customer")
        )
        return Response(status_code=204)

    return router


def portal_query_router(tokens: PortalTokens, metering: MeteringService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/portal/meters", tags=["portal"])

    @router.get(
        "/{slug}/query",
        summary="Query a meter with a portal token (the token's subject or customer only)",
        response_model=None,
        responses=problem_responses(400, 401, 404, public=True),
        openapi_extra=PORTAL_QUERY,
    )
    async def portal_query(slug: str, request: Request) -> dict[str, Any]:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise UnauthenticatedError("missing portal token (Authorization: Bearer <portal token>)")
        token = await tokens.authenticate(presented.strip())
        if token.allowed_meters is not None and slug not in token.allowed_meters:
            raise NotFoundError(f"meter {slug!r} not found", field="slug")  # not one this token may read
        query = parse_meter_query(request.query_params)
        if token.customer_key is not None:
            rows = await metering.query(slug, query, customer=token.customer_key)
        else:
            rows = await metering.query(slug, replace(query, subjects=(token.subject or "",)))
        return {
            "from": format_time(query.start) if query.start else None,
            "to": format_time(query.end) if query.end else None,
            "windowSize": query.window_size.value if query.window_size else None,
            "data": [row_json(r) for r in rows],
        }

    return router
