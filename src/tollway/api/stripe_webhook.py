"""POST /api/v1/stripe/webhook: Stripe's events about the invoices it collects. Not behind the admin token:
the `Stripe-Signature` header (HMAC with TOLLWAY_STRIPE_WEBHOOK_SECRET) is the authentication."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request

from tollway.api.openapi import PUBLIC, problem_responses
from tollway.billing.invoicing.collection import PaymentWebhooks
from tollway.errors import UnavailableError

SIGNATURE_HEADER: Final = "Stripe-Signature"  # read here, verified by the receiver (tollway.adapters.stripe)


def stripe_webhook_router(webhooks: PaymentWebhooks | None) -> APIRouter:
    router = APIRouter(prefix="/api/v1/stripe", tags=["stripe"])

    @router.post(
        "/webhook",
        summary="Receive a Stripe event",
        description="invoice.paid, invoice.voided, invoice.marked_uncollectible and invoice.payment_failed update "
        "the Tollway invoice named by the Stripe invoice's tollway_invoice_id metadata. Authenticated by the "
        "Stripe-Signature header; each event id is applied once.",
        responses=problem_responses(400, 503, public=True),
        openapi_extra={
            **PUBLIC,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "parameters": [
                {
                    "name": SIGNATURE_HEADER,
                    "in": "header",
                    "required": True,
                    "description": "t=<unix time>,v1=<HMAC-SHA256 of `t.payload` with the endpoint's secret>",
                    "schema": {"type": "string"},
                }
            ],
        },
    )
    async def receive(request: Request) -> dict[str, Any]:
        if webhooks is None:
            raise UnavailableError(
                "Stripe webhooks are off: set TOLLWAY_STRIPE_WEBHOOK_SECRET to the endpoint's secret"
            )
        payload = await request.body()
        outcome = await webhooks.receive(payload, request.headers.get(SIGNATURE_HEADER))
        return {
            "received": True,
            "id": outcome.event_id,
            "type": outcome.type,
            "duplicate": outcome.duplicate,
            "action": outcome.action,
            "invoiceId": outcome.invoice_id,
        }

    return router
