"""GET /api/v1/billing/profiles (and /{id}): OpenMeter's billing profiles, as far as Tollway has the concept.

Tollway bills every customer one way: one seller (TOLLWAY_SELLER_*), periods invoiced a grace period after
they end, payment due a set number of days after issue, collected through Stripe when a Stripe key is set
(else marked paid by hand). That is one billing profile, `default`, listed in OpenMeter's shape; profiles
cannot be created or changed through this API (configure the settings instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request

from tollway.api.listing import paginated, parse_page
from tollway.api.openapi import problem_responses
from tollway.api.wire import Json
from tollway.errors import NotFoundError
from tollway.metering.events import format_time

PROFILE_ID = "default"


@dataclass(frozen=True)
class BillingProfileInfo:
    seller_name: str = "Tollway"
    seller_email: str = ""
    seller_address: str = ""
    invoice_grace_s: float = 3600.0
    invoice_due_days: int = 30
    stripe: bool = False
    created_at: datetime | None = None


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return f"PT{whole}S" if whole % 3600 else f"PT{whole // 3600}H"


def profile_json(info: BillingProfileInfo) -> Json:
    at = format_time(info.created_at) if info.created_at else None
    collection = "charge_automatically" if info.stripe else "send_invoice"
    app = {"type": "stripe", "name": "Stripe"} if info.stripe else {"type": "custom_invoicing", "name": "Manual"}
    supplier: dict[str, Any] = {"name": info.seller_name}
    if info.seller_email:
        supplier["email"] = info.seller_email
    if info.seller_address:
        supplier["addresses"] = [{"line1": info.seller_address}]
    return {
        "id": PROFILE_ID,
        "name": "Default",
        "description": "Tollway's billing settings (TOLLWAY_SELLER_*, TOLLWAY_INVOICE_*, Stripe)",
        "default": True,
        "createdAt": at,
        "updatedAt": at,
        "metadata": {},
        "supplier": supplier,
        "workflow": {
            "collection": {"alignment": {"type": "subscription"}, "interval": _duration(info.invoice_grace_s)},
            "invoicing": {"autoAdvance": True, "draftPeriod": "PT0S", "dueAfter": f"P{info.invoice_due_days}D"},
            "payment": {"collectionMethod": collection},
            "tax": {"enabled": False, "enforced": False},
        },
        "apps": {"tax": app, "invoicing": app, "payment": app},
    }


def billing_profiles_router(info: BillingProfileInfo) -> APIRouter:
    router = APIRouter(prefix="/api/v1/billing/profiles", tags=["billing"])

    @router.get("", summary="List billing profiles (one: Tollway's settings)", response_model=None)
    async def list_profiles(request: Request) -> Json:
        return paginated([info], parse_page(request.query_params), profile_json)

    @router.get("/{profile_id}", summary="Get a billing profile", responses=problem_responses(404))
    async def get_profile(profile_id: str) -> Json:
        if profile_id != PROFILE_ID:
            raise NotFoundError(f"billing profile {profile_id!r} not found (Tollway has one: 'default')", field="id")
        return profile_json(info)

    return router
