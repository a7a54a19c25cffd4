"""/api/v1/invoices: list, get, issue, void, mark uncollectible, mark paid; and OpenMeter's
/api/v1/billing/invoices list / get / void shapes (paginated `{"items", "page", "pageSize", "totalCount"}`).

Mount after the preview router: /api/v1/invoices/preview is not an invoice id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from tollway.api.invoice_codec import invoice_json
from tollway.api.openapi import problem_responses
from tollway.billing.invoicing.model import Invoice
from tollway.billing.invoicing.service import InvoiceService
from tollway.errors import NotFoundError, NotSupportedError, ValidationError

MAX_PAGE_SIZE = 1000


def _positive(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        if not raw.isascii():  # int() reads Arabic-Indic and other Unicode digits
            raise ValueError(raw)
        value = int(raw)
    except ValueError:
        raise ValidationError(f"'{name}' must be a positive integer, got {raw!r}", field=name) from None
    if value < 1 or (maximum is not None and value > maximum):
        bound = f" (at most {maximum})" if maximum is not None else ""
        raise ValidationError(f"'{name}' must be a positive integer{bound}, got {raw!r}", field=name)
    return value


# Tollway's invoice statuses in OpenMeter's InvoiceStatus enum, on OpenMeter's /api/v1/billing/invoices paths
# (Tollway's own /api/v1/invoices keeps `void`, as Stripe spells it).
OPENMETER_STATUS = {"void": "voided"}
FROM_OPENMETER_STATUS = {v: k for k, v in OPENMETER_STATUS.items()}


def openmeter_invoice_json(invoice: Invoice) -> dict[str, Any]:
    body = invoice_json(invoice)
    body["status"] = OPENMETER_STATUS.get(body["status"], body["status"])
    return body


def _page(
    request: Request, invoices: list[Invoice], encode: Callable[[Invoice], dict[str, Any]] = invoice_json
) -> dict[str, Any]:
    page = _positive(request, "page", 1)
    size = _positive(request, "pageSize", 100, MAX_PAGE_SIZE)
    chosen = invoices[(page - 1) * size : page * size]
    return {
        "items": [encode(i) for i in chosen],
        "page": page,
        "pageSize": size,
        "totalCount": len(invoices),
    }


def _one_of(request: Request, *names: str) -> str | None:
    """The first of several spellings of a filter (`customer`, OpenMeter's `customers`); one value only."""
    for name in names:
        values = request.query_params.getlist(name)
        if len(values) > 1:
            raise ValidationError(f"'{name}' takes one value", field=name)
        if values and values[0] != "":
            return values[0]
    return None


def invoices_router(service: InvoiceService) -> APIRouter:
    router = APIRouter(tags=["invoices"])

    async def listed(request: Request) -> list[Invoice]:
        status = _one_of(request, "status", "statuses")
        return await service.list(
            customer=_one_of(request, "customer", "customers", "customerId"),
            status=FROM_OPENMETER_STATUS.get(status, status) if status is not None else None,
        )

    @router.get("/api/v1/invoices", summary="List invoices")
    async def list_invoices(request: Request) -> dict[str, Any]:
        """Oldest first. Filters: `customer` (id or key), `status` (draft, issued, paid, void, uncollectible);
        paging: `page` (from 1), `pageSize` (default 100, at most 1000)."""
        return _page(request, await listed(request))

    @router.get("/api/v1/invoices/{invoice_id}", summary="Get an invoice")
    async def get_invoice(invoice_id: str) -> dict[str, Any]:
        return invoice_json(await service.get(invoice_id))

    @router.post("/api/v1/invoices/{invoice_id}/issue", summary="Issue a draft invoice (assigns its number)")
    async def issue_invoice(invoice_id: str) -> dict[str, Any]:
        return invoice_json(await service.issue(invoice_id))

    @router.post("/api/v1/invoices/{invoice_id}/finalize", summary="Issue a draft invoice (alias of /issue)")
    async def finalize_invoice(invoice_id: str) -> dict[str, Any]:
        return invoice_json(await service.issue(invoice_id))

    @router.post("/api/v1/invoices/{invoice_id}/void", summary="Void an invoice (the record and number stay)")
    async def void_invoice(invoice_id: str) -> dict[str, Any]:
        return invoice_json(await service.void(invoice_id))

    @router.post("/api/v1/invoices/{invoice_id}/mark-uncollectible", summary="Mark an issued invoice uncollectible")
    async def mark_uncollectible(invoice_id: str) -> dict[str, Any]:
        return invoice_json(await service.mark_uncollectible(invoice_id))

    @router.post("/api/v1/invoices/{invoice_id}/mark-paid", summary="Mark an invoice paid (manual collection)")
    async def mark_paid(invoice_id: str) -> dict[str, Any]:
        return invoice_json(await service.mark_paid(invoice_id))

    # OpenMeter's billing paths
    @router.get("/api/v1/billing/invoices", summary="List invoices (OpenMeter shape)")
    async def list_billing_invoices(request: Request) -> dict[str, Any]:
        return _page(request, await listed(request), openmeter_invoice_json)

    @router.get(
        "/api/v1/billing/invoices/invoice",
        summary="Not an invoice: the path of OpenMeter's 'invoice pending lines' action (POST)",
        responses=problem_responses(404),
    )
    async def no_invoice_named_invoice() -> dict[str, Any]:
        raise NotFoundError("invoice 'invoice' not found: this path takes POST only (pending lines)", field="id")

    @router.post(
        "/api/v1/billing/invoices/invoice",
        summary="Invoice pending lines now (OpenMeter): not supported, answered 501",
        status_code=501,
        responses=problem_responses(501),
    )
    async def invoice_pending_lines() -> dict[str, Any]:
        raise NotSupportedError(
            "Tollway has no pending (gathering) invoice lines to invoice early: an invoice is made per billing period "
            "from its usage when the period closes. Preview what is due now with GET /api/v1/invoices/preview"
            "?customer=ID (or POST /api/v1/billing/customers/{customerId}/invoices/simulate), and issue a draft "
            "with POST /api/v1/invoices/{id}/issue.",
            code="pending_lines_not_supported",
        )

    @router.get("/api/v1/billing/invoices/{invoice_id}", summary="Get an invoice (OpenMeter shape)")
    async def get_billing_invoice(invoice_id: str) -> dict[str, Any]:
        return openmeter_invoice_json(await service.get(invoice_id))

    @router.post("/api/v1/billing/invoices/{invoice_id}/void", summary="Void an invoice (OpenMeter shape)")
    async def void_billing_invoice(invoice_id: str) -> dict[str, Any]:
        return openmeter_invoice_json(await service.void(invoice_id))

    return router
