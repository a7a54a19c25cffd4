"""Invoice preview: GET /api/v1/invoices/preview, and OpenMeter's
POST /api/v1/billing/customers/{customerId}/invoices/simulate (the same preview, in OpenMeter's path).

Mount this router before the one holding /api/v1/invoices/{id}, so "preview" is not read as an id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request

from tollway import bounded_json
from tollway.api.invoice_codec import invoice_json
from tollway.api.openapi import TIME, or_empty, problem_responses
from tollway.billing.invoicing.preview import InvoicePreview
from tollway.errors import ValidationError
from tollway.metering.events import parse_time


def _moment(raw: object, name: str) -> datetime | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ValidationError(f"'{name}' must be an RFC 3339 time with an offset", field=name)
    try:
        return parse_time(raw)
    except ValueError as exc:
        raise ValidationError(f"'{name}' {exc}", field=name) from None


def invoices_preview_router(preview: InvoicePreview) -> APIRouter:
    router = APIRouter(tags=["invoices"])

    @router.get(
        "/api/v1/invoices/preview",
        summary="Preview the invoice of the current period",
        responses=problem_responses(400, 404),
        openapi_extra={
            "parameters": [
                {"name": "customer", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1}},
                {"name": "at", "in": "query", "schema": or_empty(TIME)},
            ]
        },
    )
    async def preview_invoice(request: Request) -> dict[str, Any]:
        """The closing invoice of the period holding `at` (default now) for the customer's subscription active
        at `at`, with usage so far: a draft, without id or number."""
        customer = request.query_params.get("customer")
        if not customer:
            raise ValidationError("'customer' (a customer id or key) is required", field="customer")
        at = _moment(request.query_params.get("at"), "at")
        return invoice_json(await preview.preview(customer, at))

    @router.post(
        "/api/v1/billing/customers/{customer_id}/invoices/simulate",
        summary="Simulate the customer's invoice for the current period",
        responses=problem_responses(400, 404),
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "currency": {"type": "string", "description": "Must be the subscription's."},
                                "at": TIME,
                            },
                        }
                    }
                },
            }
        },
    )
    async def simulate_invoice(customer_id: str, request: Request) -> dict[str, Any]:
        """OpenMeter's simulate route, answered with the live preview. Body (optional): `currency` (must be the
        subscription's) and `at`; explicit `lines` are not supported."""
        raw = await request.body()
        body: Any = {}
        if raw.strip():
            body = bounded_json.decode(raw, nul=False)
        if not isinstance(body, dict):
            raise ValidationError("the body must be a JSON object", field="body")
        if body.get("lines"):
            raise ValidationError(
                "simulating given lines is not supported: the invoice is computed from the subscription's usage",
                field="lines",
            )
        currency = body.get("currency")
        if currency is not None and not isinstance(currency, str):
            raise ValidationError("'currency' must be an ISO 4217 code", field="currency")
        at = _moment(body.get("at"), "at")
        invoice = await preview.preview(customer_id, at)
        if currency is not None and currency != invoice.currency:
            raise ValidationError(
                f"the customer's subscription bills in {invoice.currency}, not {currency}", field="currency"
            )
        return invoice_json(invoice)

    return router
