"""`InvoiceRenderer`: the HTML and PDF renderers behind the use case's `DocumentRenderer` port."""

from __future__ import annotations

import asyncio

from tollway.adapters.invoice_documents.html import HtmlRenderer
from tollway.adapters.invoice_documents.pdf import Fonts, find_fonts, render_pdf
from tollway.billing.invoicing.document import InvoiceView


class InvoiceRenderer:
    def __init__(self, fonts: Fonts | None = None) -> None:
        self._html = HtmlRenderer()
        self._fonts = fonts  # None: the installed fonts, found at the first PDF
        self.content_security_policy = self._html.content_security_policy

    def html(self, document: InvoiceView) -> str:
        return self._html.render(document)

    async def pdf(self, document: InvoiceView) -> bytes:
        """Rendered in a worker thread: font subsetting and shaping a long text take a while."""
        if self._fonts is None:
            self._fonts = await asyncio.to_thread(find_fonts)
        return await asyncio.to_thread(render_pdf, document, self._fonts)
