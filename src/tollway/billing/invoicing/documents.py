"""The invoice documents use case: load an invoice and its customer, build what the document shows
(`document.view`), and have it rendered by the renderer the composition root gives (HTML and PDF:
`tollway.adapters.invoice_documents`). Serves GET /api/v1/invoices/{id}.html|.pdf, the dashboard's invoice pages
and `tollway invoices pdf`."""

from __future__ import annotations

from typing import Protocol

from tollway.billing.customers import Customer
from tollway.billing.invoicing.document import InvoiceView, Seller, view
from tollway.billing.invoicing.model import Invoice
from tollway.errors import NotFoundError


class InvoiceSource(Protocol):
    async def get_invoice(self, invoice_id: str) -> Invoice | None: ...


class CustomerSource(Protocol):
    async def customer(self, id_or_key: str) -> Customer: ...


class DocumentRenderer(Protocol):
    """Sets an invoice's view as a document."""

    @property
    def content_security_policy(self) -> str:
        """What the HTML document may load and run (served with it)."""
        ...

    def html(self, document: InvoiceView) -> str: ...

    async def pdf(self, document: InvoiceView) -> bytes: ...


class InvoiceDocuments:
    def __init__(
        self, *, invoices: InvoiceSource, customers: CustomerSource, seller: Seller, renderer: DocumentRenderer
    ) -> None:
        self._invoices = invoices
        self._customers = customers
        self._seller = seller
        self._renderer = renderer
        self.content_security_policy = renderer.content_security_policy

    async def view(self, invoice_id: str) -> InvoiceView:
        invoice = await self._invoices.get_invoice(invoice_id)
        if invoice is None:
            raise NotFoundError(f"invoice {invoice_id!r} not found", field="id")
        try:
            customer = await self._customers.customer(invoice.customer_id)
        except NotFoundError:  # deleted since: the invoice still renders, with the id it names
            customer = Customer(id=invoice.customer_id, key=invoice.customer_id, name=invoice.customer_id)
        return view(invoice, customer, self._seller)

    async def html(self, invoice_id: str) -> str:
        return self.render_html(await self.view(invoice_id))

    async def pdf(self, invoice_id: str) -> bytes:
        return await self._renderer.pdf(await self.view(invoice_id))

    def render_html(self, document: InvoiceView) -> str:
        return self._renderer.html(document)
