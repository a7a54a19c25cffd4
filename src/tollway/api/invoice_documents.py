"""GET /api/v1/invoices/{id}.html and /api/v1/invoices/{id}.pdf: the invoice as a document for the customer.
Included before the invoices router, whose /invoices/{id} would otherwise take "ID.html" for an id."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import HTMLResponse, Response

from tollway.billing.invoicing.documents import InvoiceDocuments


def invoice_documents_router(documents: InvoiceDocuments) -> APIRouter:
    router = APIRouter(prefix="/api/v1/invoices", tags=["invoices"])

    @router.get("/{invoice_id}.html", summary="An invoice as HTML", response_class=HTMLResponse)
    async def invoice_html(invoice_id: str) -> HTMLResponse:
        # the page runs nothing and loads nothing: only its own stylesheet applies (by hash)
        headers = {
            "Content-Security-Policy": documents.content_security_policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        return HTMLResponse(await documents.html(invoice_id), headers=headers)

    @router.get(
        "/{invoice_id}.pdf",
        summary="An invoice as PDF",
        response_class=Response,
        responses={200: {"content": {"application/pdf": {}}}},
    )
    async def invoice_pdf(invoice_id: str) -> Response:
        document = await documents.view(invoice_id)
        filename = f"invoice-{document.number if document.number != 'Draft' else invoice_id}.pdf"
        return Response(
            await documents.pdf(invoice_id),
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{filename}"'},
        )

    return router
