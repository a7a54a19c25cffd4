"""Invoice documents rendered: HTML with Jinja2 (`html.py`, the template in `templates/`) and PDF with fpdf2
(`pdf.py`), both from the view model `tollway.billing.invoicing.document` builds; `InvoiceRenderer` is the
`DocumentRenderer` the composition root gives `tollway.billing.invoicing.documents.InvoiceDocuments`."""
