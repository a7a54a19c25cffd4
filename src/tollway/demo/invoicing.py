"""The demo's billing half: the invoice preview checked against what the responses reported, the period close,
the Stripe sync and a signed invoice.paid webhook (the local stand-in), and the invoice's documents."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tollway.adapters.stripe.client import StripeApi
from tollway.adapters.stripe.sync import StripeSync
from tollway.clock import FrozenClock
from tollway.demo.narrator import Narrator
from tollway.demo.setup import (
    CUSTOMER,
    INPUT_FEATURE,
    OUTPUT_FEATURE,
    PAID_AFTER,
    STRIPE_KEY,
    SUBJECT,
    USAGE_TIMEOUT_S,
    DemoFailed,
    captured_logs,
    first_reason,
    json_body,
    line_quantities,
    token_count,
)
from tollway.demo.stripe_standin import StripeStandIn
from tollway.demo.timeline import Timeline
from tollway.metering.events import format_time
from tollway.money import format_money
from tollway.runtime.process import Runtime
from tollway.settings import Settings


async def preview_invoice(
    narrator: Narrator, clock: FrozenClock, timeline: Timeline, admin: httpx.AsyncClient, expected: dict[str, int]
) -> dict[str, Any]:
    narrator.step("Invoice preview")
    wanted = {"input": expected[INPUT_FEATURE], "output": expected[OUTPUT_FEATURE]}
    params = {
        "subject": SUBJECT,
        "groupBy": "type",
        "from": format_time(timeline.period_start),
        "to": format_time(timeline.period_end),
    }
    deadline = time.monotonic() + USAGE_TIMEOUT_S
    stored: dict[str, int] = {}
    while True:
        body = json_body(await admin.get("/api/v1/meters/llm_tokens/query", params=params))
        stored = {row["groupBy"]["type"]: int(Decimal(row["value"])) for row in body["data"]}
        if all(stored.get(kind) == count for kind, count in wanted.items()):
            break
        if time.monotonic() > deadline:
            raise DemoFailed(f"usage not stored within {USAGE_TIMEOUT_S:.0f} s: metered {stored}, expected {wanted}")
        await asyncio.sleep(0.1)
    narrator.say(
        f"Metered for {SUBJECT} (GET /api/v1/meters/llm_tokens/query): "
        + ", ".join(f"{kind} {token_count(count)}" for kind, count in sorted(stored.items()))
    )
    clock.set(timeline.preview_at)
    preview = json_body(await admin.get("/api/v1/invoices/preview", params={"customer": CUSTOMER}))
    narrator.say(f"GET /api/v1/invoices/preview?customer={CUSTOMER} at {format_time(timeline.preview_at)}:")
    narrator.lines_table(preview, "Preview (draft, usage so far)")
    quantities = line_quantities(preview)
    narrator.say(
        f"Preview: {token_count(quantities.get(INPUT_FEATURE, 0))} input tokens, "
        f"{token_count(quantities.get(OUTPUT_FEATURE, 0))} output "
        f"tokens, total {format_money(int(preview['totalMinor']), preview['currency'])}"
    )
    for key, count in expected.items():
        if quantities.get(key) != count:
            raise DemoFailed(f"the preview bills {quantities.get(key)} for {key}; the responses reported {count}")
    narrator.say("[green]✓[/green] the preview's token counts equal what the six responses reported.")
    return preview


async def close_period(
    narrator: Narrator,
    runtime: Runtime,
    clock: FrozenClock,
    timeline: Timeline,
    admin: httpx.AsyncClient,
    preview: dict[str, Any],
) -> dict[str, Any]:
    narrator.step("Period close")
    clock.set(timeline.close_at)
    narrator.say(
        f"The demo clock moves to {format_time(timeline.close_at)}: past the period end "
        f"({format_time(timeline.period_end)}) and the grace period. The billing worker's close step runs once."
    )
    assert runtime.billing is not None
    report = await runtime.billing.run_once()
    if report is None:
        raise DemoFailed("the period closer failed")
    listed = json_body(await admin.get("/api/v1/invoices", params={"customer": CUSTOMER}))
    invoices = listed["items"]
    if len(invoices) != 1:
        raise DemoFailed(f"expected one invoice for {CUSTOMER}, found {len(invoices)}")
    invoice: dict[str, Any] = invoices[0]
    narrator.lines_table(invoice, f"Invoice {invoice['number']} ({invoice['status']})")
    quantities = line_quantities(invoice)
    total = format_money(int(invoice["totalMinor"]), invoice["currency"])
    narrator.say(
        f"Invoice {invoice['number']} {invoice['status']}: {token_count(quantities.get(INPUT_FEATURE, 0))} "
        f"input tokens, {token_count(quantities.get(OUTPUT_FEATURE, 0))} output tokens, total {total}, "
        f"due {invoice['dueAt']}"
    )
    if quantities != line_quantities(preview) or invoice["total"] != preview["total"]:
        raise DemoFailed("the issued invoice differs from the preview although no usage came in between")
    narrator.say("[green]✓[/green] the same lines and total as the preview.")
    return invoice


async def pay_through_stripe(
    narrator: Narrator,
    standin: StripeStandIn | None,
    runtime: Runtime,
    clock: FrozenClock,
    admin: httpx.AsyncClient,
    settings: Settings,
    invoice: dict[str, Any],
) -> dict[str, Any]:
    narrator.step("Stripe")
    invoice_id = invoice["id"]
    if standin is None or not settings.stripe_secret_key or not settings.stripe_webhook_secret:
        narrator.say("Stripe skipped (--no-stripe)")
        paid = json_body(await admin.post(f"/api/v1/invoices/{invoice_id}/mark-paid"))
        narrator.say(f"Marked paid through the API instead: POST /api/v1/invoices/{invoice_id}/mark-paid")
        narrator.say(f"Invoice {paid['number']} is now {paid['status']}.")
        return paid
    narrator.say(
        f"TOLLWAY_STRIPE_API_BASE={settings.stripe_api_base} (the local Stripe stand-in), secret key {STRIPE_KEY}"
    )
    api = StripeApi(settings.stripe_secret_key, api_base=settings.stripe_api_base)
    assert runtime.invoices is not None
    sync = StripeSync(store=runtime.invoices.store, customers=runtime.catalog.customers, api=api, clock=clock)
    with captured_logs() as logs:
        try:
            completed = await sync.run_once()
        finally:
            await api.close()
    customer = await runtime.catalog.customers.customer(CUSTOMER)
    if customer.stripe_customer_id:
        narrator.say(f"Stripe customer for {customer.name}: {customer.stripe_customer_id}")
    synced = json_body(await admin.get(f"/api/v1/invoices/{invoice_id}"))
    stripe_invoice: str | None = synced.get("stripeInvoiceId")
    if not completed or not stripe_invoice:
        reason = first_reason(logs.records[-1]) if logs.records else "no reason given"
        raise DemoFailed(f"the Stripe sync did not complete: {reason}")
    items = len(standin.items_of(stripe_invoice))
    narrator.say(
        f"Stripe invoice: {stripe_invoice}, {items} items (one per line), finalized: {synced.get('stripeStatus')}"
    )
    # Stripe tells Tollway about the payment with a signed webhook; the demo plays Stripe's part.
    clock.advance(PAID_AFTER)
    narrator.say(f"Three days later ({format_time(clock.now())}) Acme Corp pays; Stripe sends invoice.paid.")
    standin.pay(stripe_invoice, at=clock.now())
    payload, signature = standin.webhook(
        "invoice.paid", stripe_invoice, secret=settings.stripe_webhook_secret, at=clock.now()
    )
    async with httpx.AsyncClient(base_url=admin.base_url, timeout=30) as stripe_side:  # no admin token
        answer = json_body(
            await stripe_side.post(
                "/api/v1/stripe/webhook",
                content=payload,
                headers={"Content-Type": "application/json", "Stripe-Signature": signature},
            )
        )
    narrator.say(
        f"POST /api/v1/stripe/webhook: a signed invoice.paid event (Stripe-Signature t=…,v1=HMAC-SHA256) "
        f"-> {answer.get('action')}"
    )
    paid = json_body(await admin.get(f"/api/v1/invoices/{invoice_id}"))
    if paid["status"] != "paid":
        raise DemoFailed(f"the webhook left invoice {paid['number']} {paid['status']}")
    narrator.say(f"Invoice {paid['number']} is now {paid['status']} (paid at {paid['paidAt']}).")
    return paid


async def save_documents(
    narrator: Narrator, admin: httpx.AsyncClient, invoice: dict[str, Any], folder: Path, *, temporary: bool
) -> tuple[Path, Path]:
    """The invoice's HTML and PDF documents from the API, written to `folder` (`temporary`: removed when the demo
    ends)."""
    narrator.step("Invoice documents")
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    paths = []
    for suffix in ("html", "pdf"):
        response = await admin.get(f"/api/v1/invoices/{invoice['id']}.{suffix}")
        if response.status_code != 200:
            raise DemoFailed(f"GET /api/v1/invoices/{invoice['id']}.{suffix}: HTTP {response.status_code}")
        path = folder / f"{invoice['number']}.{suffix}"
        path.write_bytes(response.content)
        paths.append(path)
        narrator.say(f"{suffix.upper()}: {path} ({len(response.content):,} bytes)")
    if temporary:
        narrator.say("(the temporary folder is removed when the demo ends: use --out DIR or --keep to keep them)")
    return paths[0], paths[1]
