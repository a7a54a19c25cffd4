"""GET /api/v1/entitlements: OpenMeter's entitlement listing, derived from the catalog.

Tollway has no separately created entitlements: a plan's rate card carries an entitlement template, and a
customer's active subscription grants it to each subject the customer pays for. Each of those is listed
as OpenMeter lists a subject's entitlement (`metered`, `boolean` or `static`), with a stable id made from
the subscription, the rate card and the subject. Values (balance, usage) are read per customer:
GET /api/v1/customers/{customer}/entitlements/{feature}/value.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from fastapi import APIRouter, Request

from tollway.api.encoding import decimal_text
from tollway.api.listing import PAGE_SCHEMA, PAGE_SIZE_SCHEMA, Page, items_of, paginated, parse_page
from tollway.api.openapi import or_empty, problem_responses
from tollway.api.wire import Json
from tollway.billing.catalog.entitlement_service import EntitlementService, GrantedEntitlement
from tollway.errors import ValidationError
from tollway.metering.events import format_time

TYPES = ("metered", "boolean", "static")
_LIST = {"type": "array", "items": {"type": "string"}}
LIST_PARAMETERS = {
    "parameters": [
        {"name": "feature", "in": "query", "schema": _LIST, "explode": True, "description": "Feature keys or ids."},
        {"name": "subject", "in": "query", "schema": _LIST, "explode": True},
        {"name": "entitlementType", "in": "query", "schema": {"type": "array", **items_of(*TYPES)}, "explode": True},
        {"name": "page", "in": "query", "schema": PAGE_SCHEMA},
        {"name": "pageSize", "in": "query", "schema": PAGE_SIZE_SCHEMA},
        {"name": "offset", "in": "query", "schema": or_empty({"type": "integer", "minimum": 0})},
        {"name": "limit", "in": "query", "schema": PAGE_SIZE_SCHEMA},
    ]
}


def entitlement_id(granted: GrantedEntitlement) -> str:
    seed = f"{granted.subscription.id}\x00{granted.rate_card}\x00{granted.subject}".encode()
    return "ent_" + hashlib.sha256(seed).hexdigest()[:26]


def entitlement_json(granted: GrantedEntitlement) -> Json:
    template = granted.template
    body: dict[str, Any] = {
        "id": entitlement_id(granted),
        "type": template.type,
        "featureId": granted.feature.id,
        "featureKey": granted.feature.key,
        "subjectKey": granted.subject,
        "customerId": granted.customer.id,
        "subscriptionId": granted.subscription.id,
        "activeFrom": format_time(granted.subscription.active_from),
        "activeTo": format_time(granted.subscription.active_to) if granted.subscription.active_to else None,
        "createdAt": format_time(granted.subscription.created_at or granted.subscription.active_from),
        "updatedAt": format_time(granted.subscription.updated_at or granted.subscription.active_from),
        "metadata": {},
        "annotations": {"subscription.id": granted.subscription.id},
        "usagePeriod": {
            "interval": granted.usage_period,
            "anchor": format_time(granted.anchor or granted.subscription.billing_anchor),
        },
        "currentUsagePeriod": {"from": format_time(granted.period_start), "to": format_time(granted.period_end)},
    }
    if template.type == "metered":
        limit = template.limit
        body.update(
            isSoftLimit=not template.hard,
            isUnlimited=False,
            issueAfterReset=decimal_text(limit) if limit is not None else None,
            preserveOverageAtReset=False,
            measureUsageFrom=format_time(granted.subscription.active_from),
            lastReset=format_time(granted.period_start),
        )
    elif template.type == "static":
        body["config"] = orjson.dumps(template.config).decode()  # OpenMeter carries it as a JSON string
    return body


def _page(params: Any) -> Page | None:
    """OpenMeter's pages: page/pageSize, or offset/limit; None: the whole list, unpaginated."""
    if params.get("offset") or params.get("limit"):
        values = []
        for name, default in (("offset", 0), ("limit", 100)):
            raw = params.get(name) or str(default)
            if not (raw.isascii() and raw.isdigit()) or (name == "limit" and not 1 <= int(raw) <= 1000):
                raise ValidationError(f"{name} must be a non-negative integer (limit 1 to 1000)", field=name)
            values.append(int(raw))
        offset, limit = values
        if offset % limit:
            raise ValidationError(
                "offset must be a multiple of limit (Tollway pages by page and pageSize)", field="offset"
            )
        return Page(offset // limit + 1, limit, True)
    page = parse_page(params)
    return page if page.given else None


def entitlement_list_router(service: EntitlementService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/entitlements", tags=["entitlements"])

    @router.get(
        "",
        summary="List the entitlements active subscriptions grant (one per subject)",
        response_model=None,
        responses=problem_responses(400),
        openapi_extra=LIST_PARAMETERS,
    )
    async def list_entitlements(request: Request) -> Json | list[Json]:
        params = request.query_params
        kinds = [k for k in params.getlist("entitlementType") if k]
        for kind in kinds:
            if kind not in TYPES:
                raise ValidationError(f"entitlementType must be one of {', '.join(TYPES)}", field="entitlementType")
        features = {f for f in params.getlist("feature") if f}
        subjects = {s for s in params.getlist("subject") if s}
        chosen = [
            g
            for g in await service.granted_entitlements()
            if (not features or g.feature.key in features or g.feature.id in features)
            and (not subjects or g.subject in subjects)
            and (not kinds or g.template.type in kinds)
        ]
        page = _page(params)
        if page is None:
            return [entitlement_json(g) for g in chosen]
        return paginated(chosen, page, entitlement_json)

    return router
