"""Invoice documents: HTML (autoescaped, rendered by headless Chromium to a PNG that must not be blank), PDF
(parsed back with pypdf), the routes GET /api/v1/invoices/{id}.html|.pdf, and `tollway invoices pdf`."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from PIL import Image
from pypdf import PdfReader

from tests.conftest import service_missing
from tests.support.cli import run_tollway
from tollway.adapters.invoice_documents.html import HtmlRenderer
from tollway.adapters.invoice_documents.pdf import Fonts, find_fonts, render_pdf
from tollway.adapters.invoice_documents.renderer import InvoiceRenderer
from tollway.adapters.memory.invoices import MemoryInvoiceStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.billing.customers import Address, Customer
from tollway.billing.invoicing.document import Seller, view
from tollway.billing.invoicing.documents import InvoiceDocuments
from tollway.billing.invoicing.model import Invoice, InvoiceLine, InvoiceStatus, UsageSlice
from tollway.billing.invoicing.ports import IssueRequest
from tollway.billing.pricing.model import TierCharge, UsageCharge
from tollway.clock import FrozenClock
from tollway.errors import NotFoundError
from tollway.metering.service import MeteringService
from tollway.settings import Settings
from tollway.wiring.services import build_services

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MID_FEB = datetime(2026, 2, 15, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
TOKEN = "admin-token-0123456789"
SELLER = Seller(name="Tollway Demo GmbH", address="Hauptstr. 1, 10115 Berlin", email="billing@tollway.test")
CUSTOMER = Customer(
    id="cus01",
    key="acme",
    name="Acme <script>alert(1)</script> Corp",
    email="ap@acme.test",
    billing_address=Address(line1="1 Road Runner Way", city="Phoenix", postal_code="85001", country="US"),
)

# 1,500,000 output tokens, 100,000 free; graduated tiers: 1,000,000 x 0.00001 = 10 and 400,000 x 0.000008 = 3.2;
# 10% off 13.2 = 1.32 -> 11.88. Flat fee 49 for half of March's period (Feb 15 - Mar 1 of Feb 1 - Mar 1) = 24.5.
CHARGE = UsageCharge(
    quantity=Decimal(1500000),
    free_quantity=Decimal(100000),
    billable_quantity=Decimal(1400000),
    priced_amount=Decimal("13.2"),
    discount_amount=Decimal("1.32"),
    maximum_cut=Decimal(0),
    minimum_top_up=Decimal(0),
    amount=Decimal("11.88"),
    tiers=(
        TierCharge(1, Decimal(1000000), Decimal(1000000), Decimal("0.00001"), Decimal(0), Decimal(10)),
        TierCharge(2, None, Decimal(400000), Decimal("0.000008"), Decimal(0), Decimal("3.2")),
    ),
)


def invoice_lines() -> tuple[InvoiceLine, ...]:
    return (
        InvoiceLine(
            kind="usage",
            rate_card_key="output-tokens",
            description="1,500,000 output tokens, graduated",
            period_start=JAN,
            period_end=FEB,
            amount=Decimal("11.88"),
            amount_minor=1188,
            feature_key="output-tokens",
            charge=CHARGE,
            slices=(
                UsageSlice({"model": "gpt-4o", "type": "output"}, Decimal(1200000)),
                UsageSlice({"model": "gpt-4o-mini", "type": "output"}, Decimal(300000)),
            ),
        ),
        InvoiceLine(
            kind="flat",
            rate_card_key="platform-fee",
            description="Platform fee",
            period_start=MID_FEB,
            period_end=MAR,
            amount=Decimal("24.5"),
            amount_minor=2450,
            proration=Decimal("0.5"),
        ),
        InvoiceLine(
            kind="adjustment",
            rate_card_key="output-tokens",
            description="late usage in December",
            period_start=JAN - timedelta(days=31),
            period_end=JAN,
            amount=Decimal("-1.5"),
            amount_minor=-150,
            adjusts_invoice_id="inv00",
        ),
    )


class Customers:
    async def customer(self, id_or_key: str) -> Customer:
        if id_or_key != CUSTOMER.id:
            raise NotFoundError(f"customer {id_or_key} not found")
        return CUSTOMER


@pytest.fixture
async def store() -> MemoryInvoiceStore:
    clock = FrozenClock(FEB + timedelta(hours=1))
    store = MemoryInvoiceStore(clock)
    draft = Invoice(
        id="inv01",
        customer_id=CUSTOMER.id,
        currency="USD",
        status="draft",
        period_start=JAN,
        period_end=FEB,
        lines=invoice_lines(),
        total_minor=1188 + 2450 - 150,
        billing_key="sub01:1",
    )
    issue = IssueRequest(issued_at=FEB + timedelta(hours=1), due_at=FEB + timedelta(days=14, hours=1))
    for year in range(41):  # numbers 1..41 go to other invoices first
        extra = Invoice(
            id=f"other{year}",
            customer_id="cus02",
            currency="USD",
            status="draft",
            period_start=JAN,
            period_end=FEB,
            lines=(),
            total_minor=0,
            billing_key=f"other:{year}",
        )
        await store.create_invoice(extra, issue=issue)
    assert await store.create_invoice(draft, issue=issue) is not None
    return store


@pytest.fixture
def documents(store: MemoryInvoiceStore) -> InvoiceDocuments:
    return InvoiceDocuments(invoices=store, customers=Customers(), seller=SELLER, renderer=InvoiceRenderer())


@pytest.fixture
async def client(documents: InvoiceDocuments) -> AsyncIterator[httpx.AsyncClient]:
    clock = FrozenClock(FEB)
    app = create_management_app(
        metering=MeteringService(MemoryEventStore(clock), clock), admin_token=TOKEN, invoice_documents=documents
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://tollway", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        yield http


async def test_the_html_names_both_parties_every_line_its_breakdown_and_the_total(documents: InvoiceDocuments) -> None:
    html = await documents.html("inv01")

    assert "TW-2026-000042" in html
    assert "Tollway Demo GmbH" in html
    assert "billing@tollway.test" in html
    assert "Acme &lt;script&gt;alert(1)&lt;/script&gt; Corp" in html
    assert "<script>" not in html
    assert "1 Road Runner Way" in html
    assert "85001 Phoenix" in html
    assert "1 Jan 2026 – 1 Feb 2026" in html  # billing period
    assert "1 Feb 2026 01:00 UTC" in html  # issued
    assert "15 Feb 2026 01:00 UTC" in html  # due
    assert "1,500,000" in html
    assert "model=gpt-4o, type=output: 1,200,000" in html
    assert "model=gpt-4o-mini, type=output: 300,000" in html
    assert "Free quantity: 100,000" in html
    assert "Tier 1 (up to 1,000,000): 1,000,000 x $0.00001" in html
    assert "Tier 2 (above): 400,000 x $0.000008" in html
    assert "$3.2<" in html  # tier amounts exact, not rounded
    assert "-$1.32" in html  # the discount
    assert "Prorated: 50% of the period" in html
    assert "15 Feb 2026 – 1 Mar 2026" in html
    assert "Re-rates invoice inv00" in html
    for amount in ("$11.88", "$24.50", "-$1.50", "$34.88"):
        assert amount in html


def test_a_draft_preview_renders_without_number_or_dates() -> None:
    draft = Invoice(
        id="",
        customer_id="cus01",
        currency="JPY",
        status="draft",
        period_start=JAN,
        period_end=FEB,
        lines=(),
        total_minor=0,
    )
    html = HtmlRenderer().render(view(draft, CUSTOMER, SELLER))
    assert "Draft" in html
    assert "No charges in this period." in html
    assert "¥0" in html


async def test_the_pdf_carries_the_number_lines_and_total(documents: InvoiceDocuments) -> None:
    pdf = await documents.pdf("inv01")

    assert pdf.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(BytesIO(pdf)).pages)
    assert "TW-2026-000042" in text
    assert "Acme <script>alert(1)</script> Corp" in text  # a PDF has no markup to escape
    assert "$34.88" in text
    assert "$11.88" in text
    assert "Tier 2 (above): 400,000 x $0.000008" in text


def test_the_pdf_shows_the_euro_sign_and_without_a_unicode_font_its_code() -> None:
    euro = Invoice(
        id="inv9",
        customer_id="cus01",
        currency="EUR",
        status="issued",
        period_start=JAN,
        period_end=FEB,
        lines=(),
        total_minor=123456,
        number="TW-2026-000009",
    )
    document = view(euro, CUSTOMER, SELLER)
    if find_fonts().regular is not None:
        assert "Total (EUR) €1,234.56" in PdfReader(BytesIO(render_pdf(document))).pages[0].extract_text()
    core = PdfReader(BytesIO(render_pdf(document, Fonts()))).pages[0].extract_text()  # Helvetica: Latin-1
    assert "Total (EUR) EUR 1,234.56" in core


async def test_the_routes_serve_html_and_pdf_behind_the_admin_token(client: httpx.AsyncClient) -> None:
    html = await client.get("/api/v1/invoices/inv01.html")
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert html.headers["content-security-policy"].startswith("default-src 'none'; style-src 'sha256-")
    assert html.headers["x-content-type-options"] == "nosniff"
    assert html.headers["referrer-policy"] == "no-referrer"
    assert "TW-2026-000042" in html.text

    pdf = await client.get("/api/v1/invoices/inv01.pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == 'inline; filename="invoice-TW-2026-000042.pdf"'
    assert "$34.88" in PdfReader(BytesIO(pdf.content)).pages[0].extract_text()

    missing = await client.get("/api/v1/invoices/nope.pdf")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "invoice 'nope' not found"

    anonymous = await client.get("/api/v1/invoices/inv01.html", headers={"Authorization": ""})
    assert anonymous.status_code == 401


def test_chromium_renders_the_html_to_a_page_that_is_not_blank(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        service_missing("chromium is not installed (make test installs the Debian package)")
        return
    issued = Invoice(
        id="inv01",
        customer_id=CUSTOMER.id,
        currency="USD",
        status="issued",
        period_start=JAN,
        period_end=FEB,
        lines=invoice_lines(),
        total_minor=3488,
        number="TW-2026-000042",
        issued_at=FEB,
        due_at=FEB + timedelta(days=14),
    )
    page = tmp_path / "invoice.html"
    page.write_text(HtmlRenderer().render(view(issued, CUSTOMER, SELLER)), encoding="utf-8")
    shot = tmp_path / "invoice.png"
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += [f"--screenshot={shot}", "--window-size=1000,1200", page.as_uri()]
    subprocess.run(command, check=True, capture_output=True, timeout=60, cwd=tmp_path)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1000, 1200)
    raw = image.tobytes()
    pixels = [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]
    ink = sum(1 for r, g, b in pixels if r + g + b < 600)
    assert ink > 0.01 * len(pixels)  # text and rules, not an empty page
    blue = sum(1 for r, g, b in pixels if abs(r - 37) < 30 and abs(g - 99) < 30 and abs(b - 235) < 30)
    assert blue > 500  # the styled header rule and title rendered


def test_tollway_invoices_pdf_writes_the_invoice_from_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tollway.db'}"

    async def seed() -> str:
        services = build_services(Settings(database_url=url), FrozenClock(FEB + timedelta(hours=1)))
        await services.open()
        try:
            customer = await services.catalog.customers.create_customer(
                key="acme", name="Acme Corp", email="ap@acme.test"
            )
            draft = Invoice(
                id="inv01",
                customer_id=customer.id,
                currency="USD",
                status="draft",
                period_start=JAN,
                period_end=FEB,
                lines=invoice_lines(),
                total_minor=3488,
                billing_key="sub01:1",
            )
            issue = IssueRequest(issued_at=FEB + timedelta(hours=1), due_at=FEB + timedelta(days=14))
            stored = await services.invoices.store.create_invoice(draft, issue=issue)
            assert stored is not None
            return stored.id
        finally:
            await services.close()

    invoice_id = asyncio.run(seed())
    env = {"TOLLWAY_DATABASE_URL": url, "TOLLWAY_SELLER_NAME": "Seller From Env"}

    done = run_tollway("invoices", "pdf", invoice_id, "-o", "out.pdf", cwd=tmp_path, env=env)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("out.pdf (")
    text = PdfReader(tmp_path / "out.pdf").pages[0].extract_text()
    assert "TW-2026-000001" in text
    assert "Seller From Env" in text
    assert "Acme Corp" in text
    assert "$34.88" in text

    missing = run_tollway("invoices", "pdf", "nope", cwd=tmp_path, env=env)
    assert missing.returncode == 2
    assert "invoice 'nope' not found" in missing.stderr


def test_nothing_is_due_on_a_paid_invoice_while_its_total_stays() -> None:
    def rendered(status: InvoiceStatus) -> tuple[str, str]:
        invoice = Invoice(
            id="inv7",
            customer_id="cus01",
            currency="USD",
            status=status,
            period_start=JAN,
            period_end=FEB,
            lines=(
                InvoiceLine(
                    kind="flat",
                    rate_card_key="platform-fee",
                    description="Platform fee",
                    period_start=JAN,
                    period_end=FEB,
                    amount=Decimal("12.34"),
                    amount_minor=1234,
                ),
            ),
            total_minor=1234,
            number="TW-2026-000007",
        )
        document = view(invoice, CUSTOMER, SELLER)
        pdf_text = PdfReader(BytesIO(render_pdf(document))).pages[0].extract_text()
        return HtmlRenderer().render(document), pdf_text

    issued_html, issued_pdf = rendered("issued")
    assert "Amount due</div><strong>$12.34</strong>" in issued_html
    settled: tuple[InvoiceStatus, ...] = ("paid", "void")
    for status in settled:
        html, pdf_text = rendered(status)
        assert "Amount due</div><strong>$0.00</strong>" in html
        assert "$12.34" in html  # the total is still shown
        assert "$0.00" in pdf_text
    assert "$0.00" not in issued_pdf
