"""Invoices in any language: the PDF embeds fonts for Chinese, Arabic, Hebrew and emoji and sets right-to-left
text in its direction (pypdf reads every script back); a 20,000-character address wraps onto further pages
inside the margins; both documents drop Unicode bidi controls from user text; the HTML's
Content-Security-Policy allows its own stylesheet and nothing else."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO

from pypdf import PdfReader

from tests.conftest import service_missing
from tollway.adapters.invoice_documents.html import HtmlRenderer
from tollway.adapters.invoice_documents.pdf import Fonts, find_fonts, render_pdf
from tollway.billing.customers import Address, Customer
from tollway.billing.invoicing.document import Seller, view
from tollway.billing.invoicing.model import Invoice, InvoiceLine

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
CHINESE = "北京数据科技有限公司"
ARABIC = "شركة البيانات"
HEBREW = "חברת נתונים"
EMOJI = "😀🚀"
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "Acme \u202eRSU 0001" shows as "Acme 1000 USR"
A4 = (595.28, 841.89)  # points


def invoice(lines: tuple[InvoiceLine, ...] = ()) -> Invoice:
    return Invoice(
        id="inv1",
        customer_id="cus1",
        currency="EUR",
        status="issued",
        period_start=JAN,
        period_end=FEB,
        lines=lines,
        total_minor=123456,
        number="TW-2026-000001",
    )


def installed() -> Fonts:
    fonts = find_fonts()
    if fonts.regular is None or len(fonts.fallbacks) < 2 or not fonts.shaping:
        service_missing(f"invoice fonts or uharfbuzz missing ({fonts}); make fonts installs them")
    return fonts


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(BytesIO(pdf)).pages)


def test_the_pdf_shows_chinese_arabic_hebrew_and_emoji_and_reads_right_to_left_in_its_direction() -> None:
    fonts = installed()
    customer = Customer(
        id="cus1",
        key="acme",
        name=CHINESE,
        billing_address=Address(line1=ARABIC, line2=HEBREW, city=f"Zürich {EMOJI}", country="CH"),
    )
    pdf = render_pdf(view(invoice(), customer, Seller(name="Tollway Demo GmbH")), fonts)
    lines = pdf_text(pdf).splitlines()

    assert CHINESE in lines
    # pypdf gives right-to-left runs back in reading order only when they were drawn right to left: laid out
    # left to right (no bidi), the Hebrew would come back reversed ("םינותנ תרבח")
    assert ARABIC in lines
    assert HEBREW in lines
    assert f"Zürich {EMOJI}" in lines
    assert "Total (EUR) €1,234.56" in lines  # the euro sign itself, not "EUR"
    assert b"/FontFile2" in pdf  # the fonts are embedded, not referenced
    assert b"/Helvetica" not in pdf
    assert "?" not in "".join(lines)


@dataclass
class Run:
    text: str
    x: float
    y: float


def test_a_20000_character_address_wraps_onto_further_pages_inside_the_margins() -> None:
    fonts = installed()
    street = ("Avenida " + "x" * 9_000 + " ") * 2 + "y" * 1_982  # two 9,000-letter words and a tail
    assert len(street) == 20_000
    customer = Customer(id="cus1", key="acme", name="Acme", billing_address=Address(line1=street, city="Lisboa"))
    pdf = render_pdf(view(invoice(), customer, Seller()), fonts)
    reader = PdfReader(BytesIO(pdf))
    runs: list[Run] = []
    for page in reader.pages:
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        assert (round(width, 2), round(height, 2)) == A4

        def visit(text: str, cm: list[float], tm: list[float], _font: object, _size: float) -> None:
            if text.strip():
                runs.append(Run(text, cm[0] * tm[4] + cm[4], cm[3] * tm[5] + cm[5]))

        page.extract_text(visitor_text=visit)
    address = [run for run in runs if set(run.text.strip()) <= set("Avenidaxy ")]
    assert len(reader.pages) >= 3
    assert sum(run.text.count("x") for run in address) == 18_000
    assert sum(run.text.count("y") for run in address) == 1_982
    for run in address:  # each line starts inside the margins and is no longer than a line of the page
        assert 28 <= run.x <= 40, run
        assert 40 <= run.y <= A4[1] - 28, run
        assert len(run.text.strip()) <= 110, len(run.text)
    assert "Lisboa" in pdf_text(pdf)


def test_bidi_controls_are_dropped_from_user_text_in_html_and_pdf() -> None:
    spoof = f"Acme {RLO}RSU 0001\u2066x\u2069\u200f"
    customer = Customer(id="cus1", key=f"acme{RLO}", name=spoof, billing_address=Address(line1=f"{RLO}1 Road"))
    line = InvoiceLine(
        kind="flat",
        rate_card_key=f"fee{RLO}",
        description=f"Platform {RLO}eef",
        period_start=JAN,
        period_end=FEB,
        amount=Decimal(1),
        amount_minor=100,
    )
    document = view(invoice((line,)), customer, Seller(name=f"Seller{RLO}", address=f"Street{RLO} 1"))
    html = HtmlRenderer().render(document)
    pdf = pdf_text(render_pdf(document, Fonts()))  # the core font: the text checks need no font package

    for control in (RLO, "\u2066", "\u2069", "\u200f"):
        assert control not in html
        assert control not in pdf
    assert "<bdi>Acme RSU 0001x</bdi>" in html
    assert "<bdi>1 Road</bdi>" in html
    assert "<bdi>Platform eef</bdi>" in html
    assert "Acme RSU 0001x" in pdf


def test_the_html_policy_allows_only_its_own_stylesheet() -> None:
    renderer = HtmlRenderer()
    html = renderer.render(view(invoice(), Customer(id="c", key="c", name="C"), Seller()))
    (style,) = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert renderer.content_security_policy == (
        f"default-src 'none'; style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    assert " style=" not in html  # an inline style attribute would be blocked by the policy
    assert "<script" not in html
