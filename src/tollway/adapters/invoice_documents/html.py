"""The invoice as HTML (Jinja2, autoescaped), served with a Content-Security-Policy that allows its one stylesheet
and nothing else."""

from __future__ import annotations

import base64
import hashlib
import re

from jinja2 import Environment, PackageLoader, select_autoescape

from tollway.billing.invoicing.document import InvoiceView


class HtmlRenderer:
    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("tollway.adapters.invoice_documents", "templates"),
            autoescape=select_autoescape(["html"], default=True),
        )
        self.content_security_policy = _policy(self._env)

    def render(self, document: InvoiceView) -> str:
        return self._env.get_template("invoice.html").render(doc=document)


def _policy(env: Environment) -> str:
    """Nothing but the template's own stylesheet (by its hash): no script, image, font, frame or form target."""
    assert env.loader is not None
    source = env.loader.get_source(env, "invoice.html")[0]
    styles = re.findall(r"<style>(.*?)</style>", source, re.DOTALL)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in styles)
    return f"default-src 'none'; style-src {hashes}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
