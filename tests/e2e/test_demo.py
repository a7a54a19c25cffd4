"""`tollway demo` as a newcomer runs it: offline, every step printed, the invoice paid, its documents written."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from tests.support.cli import run_tollway
from tollway.demo.timeline import month_timeline

HEADINGS = (
    "Step 1/8: A workspace",
    "Step 2/8: The gateway and the catalog",
    "Step 3/8: Tollway, served in this process",
    "Step 4/8: Six requests through the gateway as acme-corp",
    "Step 5/8: Invoice preview",
    "Step 6/8: Period close",
    "Step 7/8: Stripe",
    "Step 8/8: Invoice documents",
    "Done",
)
CENT = Decimal("0.01")


def tokens(text: str) -> int:
    return int(text.replace(",", ""))


def test_demo_tells_the_whole_story_and_leaves_a_paid_invoice_as_html_and_pdf(tmp_path: Path) -> None:
    out = tmp_path / "invoices"

    result = run_tollway("demo", "--out", str(out), cwd=tmp_path, timeout_s=180)

    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    assert "Traceback" not in text + result.stderr
    positions = [text.find(heading) for heading in HEADINGS]
    assert -1 not in positions, [h for h, at in zip(HEADINGS, positions, strict=True) if at == -1]
    assert positions == sorted(positions)

    reported = re.search(r"The responses reported ([\d,]+) input and ([\d,]+) output tokens in all\.", text)
    preview = re.search(r"Preview: ([\d,]+) input tokens, ([\d,]+) output tokens, total \$(\d+\.\d\d)", text)
    issued = re.search(
        r"Invoice (TW-\d{4}-\d{6}) issued: ([\d,]+) input tokens, ([\d,]+) output tokens, total \$(\d+\.\d\d)", text
    )
    assert reported is not None, text
    assert preview is not None, text
    assert issued is not None, text
    input_tokens, output_tokens = tokens(reported[1]), tokens(reported[2])
    assert input_tokens > 0
    assert output_tokens > 0
    assert (tokens(preview[1]), tokens(preview[2])) == (input_tokens, output_tokens)
    assert (tokens(issued[2]), tokens(issued[3])) == (input_tokens, output_tokens)
    # Starter: $0.000003 per input token, $0.00001 per output token, each line rounded half-up to cents.
    expected_total = (input_tokens * Decimal("0.000003")).quantize(CENT, ROUND_HALF_UP) + (
        output_tokens * Decimal("0.00001")
    ).quantize(CENT, ROUND_HALF_UP)
    assert Decimal(preview[3]) == expected_total
    assert Decimal(issued[4]) == expected_total
    assert expected_total > 0

    number = issued[1]
    assert re.fullmatch(r"TW-\d{4}-\d{6}", number)
    # Stripe is the local stand-in: the sync creates and finalizes one Stripe invoice, one item per line (two
    # rate cards), and the signed webhook pays the invoice.
    standin = re.search(r"Stripe: local stand-in at http://127\.0\.0\.1:(\d+) \(no real Stripe account is used\)", text)
    assert standin is not None, text
    assert "Stripe skipped" not in text
    assert re.search(r"Stripe customer for Acme Corp: cus_[0-9a-f]+\n", text), text
    stripe_invoice = re.search(r"Stripe invoice: (in_[0-9a-f]+), 2 items \(one per line\), finalized: open\n", text)
    assert stripe_invoice is not None, text
    assert "POST /api/v1/stripe/webhook: a signed invoice.paid event" in text
    assert "-> paid" in text
    assert f"Invoice {number} is now paid" in text
    summary, blank, dashboard, hint = text.rstrip().splitlines()[-4:]
    assert summary.startswith(f"Invoice {number} for ")
    assert re.search(r": paid\. \(\d+\.\d s\)$", summary)
    # at the end: where the dashboard is and how to sign in (and how to keep it serving)
    assert blank == ""
    assert re.fullmatch(
        r"Dashboard: http://127\.0\.0\.1:\d+/dashboard\?range=30d  \(sign in with the admin token demo-[0-9a-f]{16}\)",
        dashboard,
    ), dashboard
    assert "tollway demo --serve" in hint

    html = out / f"{number}.html"
    pdf = out / f"{number}.pdf"
    assert f"HTML: {html}" in text
    assert f"PDF: {pdf}" in text
    assert number in html.read_text()
    assert pdf.read_bytes().startswith(b"%PDF")
    assert pdf.stat().st_size > 0

    workspace = re.search(r"Temporary folder: (\S+)", text)
    assert workspace is not None
    assert not Path(workspace[1]).exists()  # removed without --keep; the documents stay in --out


def test_the_demo_clock_covers_the_calendar_month_and_closes_after_the_grace() -> None:
    december = month_timeline(datetime(2026, 12, 2, 5, 4, tzinfo=UTC), timedelta(hours=1))
    assert december.period_start == datetime(2026, 12, 1, tzinfo=UTC)
    assert december.period_end == datetime(2027, 1, 1, tzinfo=UTC)
    assert [december.request_at(n) for n in (0, 5)] == [
        datetime(2026, 12, 15, 12, 0, tzinfo=UTC),
        datetime(2026, 12, 15, 12, 5, tzinfo=UTC),
    ]
    assert december.preview_at == datetime(2026, 12, 15, 18, 0, tzinfo=UTC)
    assert december.close_at == datetime(2027, 1, 1, 1, 1, tzinfo=UTC)

    february = month_timeline(datetime(2028, 2, 29, 23, 59, tzinfo=UTC), timedelta(seconds=30))
    assert (february.period_start, february.period_end) == (
        datetime(2028, 2, 1, tzinfo=UTC),
        datetime(2028, 3, 1, tzinfo=UTC),
    )
    assert february.close_at == datetime(2028, 3, 1, 0, 1, 30, tzinfo=UTC)
