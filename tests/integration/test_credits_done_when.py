"""Issue 22's "Done when", end to end in one process: a prepaid-only customer buys $20 of credits through a
top-up paid in Stripe (the grant's invoice synced to the Stripe stand-in, paid there, its signed invoice.paid
webhook activates the grant), spends them through the gateway with the official openai SDK, sees the live
balance fall with each request, is refused at zero (429 in OpenAI's shape naming the balance), and the
closing invoice's credit lines equal the ledger to the cent.

Prices worked out by hand: the simulator counts 18 prompt tokens for `chat(n)` and answers `max_tokens` (10)
completion tokens; the plan prices input at $0.05 and output at $0.11 a token: 18 x 0.05 + 10 x 0.11 = $2.00 a
call, so $20 pays exactly 10 calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.fake_stripe import FakeStripe
from tests.support.in_process import InProcess, in_process
from tollway.clock import FrozenClock
from tollway.gateway.providers.simulator import prompt_tokens
from tollway.metering.pipeline import UsagePipeline

ADMIN = "admin-token"
SECRET = "whsec_done_when"
AUTH = {"authorization": f"Bearer {ADMIN}"}
CONFIG: dict[str, Any] = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [{"username": "acme-agent", "keys": ["acme-key"]}],
    "features": [
        {"key": "input-tokens", "meter": "llm_tokens", "filters": {"type": "input"}},
        {"key": "output-tokens", "meter": "llm_tokens", "filters": {"type": "output"}},
    ],
    "plans": [
        {
            "key": "starter",
            "name": "Starter",
            "currency": "USD",
            "billing_cadence": "P1M",
            "rate_cards": [
                {"feature": "input-tokens", "price": {"type": "unit", "amount": "0.05"}},
                {"feature": "output-tokens", "price": {"type": "unit", "amount": "0.11"}},
            ],
        }
    ],
}


def chat(n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question {n:03d}: what keeps a lighthouse lamp turning at night?"}]


async def balance(tollway: InProcess, api: Any) -> dict[str, str]:
    pipeline = tollway.runtime.pipeline
    assert isinstance(pipeline, UsagePipeline)
    assert await pipeline.flush()  # the calls' usage stored now, not on the flush interval
    read = await api.get("/api/v1/customers/acme/credits/balance", headers=AUTH)
    assert read.status_code == 200, read.text
    body: dict[str, str] = read.json()
    return {k: body[k] for k in ("live", "settled", "pending")}


async def test_buy_spend_refuse_and_invoice(tmp_path: Path, fake_stripe: FakeStripe) -> None:
    assert prompt_tokens({"messages": chat(0)}) == 18
    clock = FrozenClock(datetime(2026, 12, 10, 12, 0, tzinfo=UTC))
    async with (
        in_process(
            tmp_path,
            CONFIG,
            clock=clock,
            admin_token=ADMIN,
            spend_refresh_s=0.05,
            stripe_secret_key="sk_test_done_when",
            stripe_api_base=fake_stripe.origin,
            stripe_webhook_secret=SECRET,
            invoice_grace_s=0,
        ) as tollway,
        tollway.http() as api,
        tollway.http2() as http,
        openai.AsyncOpenAI(base_url="http://tollway/v1", api_key="acme-key", http_client=http, max_retries=0) as sdk,
    ):
        customer = {
            "key": "acme",
            "name": "Acme",
            "usageAttribution": {"subjectKeys": ["acme-agent"]},
            "metadata": {"prepaid_only": "true"},
        }
        assert (await api.post("/api/v1/customers", json=customer, headers=AUTH)).status_code == 201
        subscription = {"customerKey": "acme", "plan": {"key": "starter"}, "activeFrom": "2026-12-01T00:00:00Z"}
        made = await api.post("/api/v1/subscriptions", json=subscription, headers=AUTH)
        assert made.status_code == 201, made.text

        # buy $20 of credits: pending until its invoice is paid
        topup = {"name": "Top-up", "amount": "20", "fundingMethod": "invoice", "key": "topup-1"}
        bought = await api.post("/api/v1/customers/acme/credits/grants", json=topup, headers=AUTH)
        assert bought.status_code == 201, bought.text
        assert bought.json()["status"] == "pending"
        assert await balance(tollway, api) == {"live": "0", "settled": "0", "pending": "20"}
        with pytest.raises(openai.RateLimitError):  # nothing to spend yet
            await sdk.chat.completions.create(model="demo", messages=chat(0), max_tokens=10)  # type: ignore[arg-type]

        assert tollway.runtime.billing is not None
        await tollway.runtime.billing.run_once()  # the Stripe sync step: the top-up invoice reaches Stripe
        (invoice,) = fake_stripe.state.invoices.values()
        assert (invoice["status"], invoice["currency"]) == ("open", "usd")
        assert [i["amount"] for i in fake_stripe.items_of(invoice["id"])] == [2000]
        fake_stripe.pay(invoice["id"], at=clock.now())
        body, signature = fake_stripe.webhook("invoice.paid", invoice["id"], secret=SECRET, at=clock.now())
        hook = await api.post(
            "/api/v1/stripe/webhook",
            content=body,
            headers={"stripe-signature": signature, "content-type": "application/json"},
        )
        assert hook.status_code == 200, hook.text
        grant = (await api.get(f"/api/v1/customers/acme/credits/grants/{bought.json()['id']}", headers=AUTH)).json()
        assert grant["status"] == "active"
        assert await balance(tollway, api) == {"live": "20", "settled": "20", "pending": "0"}

        # spend: $2.00 a call, the live balance falls by 2 each time
        for n in range(1, 11):
            answer = await sdk.chat.completions.create(model="demo", messages=chat(n), max_tokens=10)  # type: ignore[arg-type]
            assert answer.usage is not None
            assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (18, 10)
            clock.advance(timedelta(minutes=1))  # the frozen clock: the call's usage is before "now"
            assert (await balance(tollway, api))["live"] == str(20 - 2 * n)
        with pytest.raises(openai.RateLimitError) as refused:
            await sdk.chat.completions.create(model="demo", messages=chat(11), max_tokens=10)  # type: ignore[arg-type]
        assert refused.value.status_code == 429
        assert isinstance(refused.value.body, dict)
        assert refused.value.body["type"] == "insufficient_quota"
        message = refused.value.body["message"]
        assert message.startswith(
            "Limit reached: the prepaid credit balance of customer 'acme' allows 20 this billing period "
            "(2026-12-01T00:00:00Z to 2027-01-01T00:00:00Z); 20 used, and this request may use up to 2"
        ), message
        assert "Top up: POST /api/v1/customers/acme/credits/grants" in message

        # the period closes: 180 input tokens x 0.05 = 9.00, 100 output tokens x 0.11 = 11.00; credits pay 20.00
        clock.set(datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC))
        await tollway.runtime.billing.run_once()
        listed = (await api.get("/api/v1/invoices?customers=acme", headers=AUTH)).json()
        items = listed["items"] if isinstance(listed, dict) else listed
        (closing,) = [i for i in items if i["period"] == {"from": "2026-12-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}]
        lines = [(line["type"], line["name"], line["totals"]["total"]) for line in closing["lines"]]
        assert lines == [
            ("usage_based", "180 input-tokens x $0.05", "9"),
            ("usage_based", "100 output-tokens x $0.11", "11"),
            ("credits_applied", "Credits applied: Top-up", "-20"),
        ]
        assert (closing["totals"]["creditsTotal"], closing["totals"]["total"]) == ("20", "0")
        ledger = (await api.get("/api/v1/customers/acme/credits/transactions", headers=AUTH)).json()
        rows = ledger["items"] if isinstance(ledger, dict) else ledger
        line_ids = [line["id"] for line in closing["lines"]]
        assert [(r["type"], r["amount"], r["balanceBefore"], r["balanceAfter"], r["invoiceLineId"]) for r in rows] == [
            ("funded", "20", "0", "20", None),
            ("consumed", "-9", "20", "11", line_ids[0]),
            ("consumed", "-11", "11", "0", line_ids[1]),
        ]
        consumed = sum(Decimal(r["amount"]) for r in rows if r["invoiceId"] == closing["id"])
        credited = sum(
            Decimal(line["totals"]["total"]) for line in closing["lines"] if line["type"] == "credits_applied"
        )
        assert consumed == credited == Decimal("-20.00")  # the ledger equals the invoice's credit lines to the cent
        assert await balance(tollway, api) == {"live": "0", "settled": "0", "pending": "0"}

        await tollway.runtime.billing.run_once()  # the closing invoice reaches Stripe: credits as a negative item
        (synced,) = [i for i in fake_stripe.state.invoices.values() if i["id"] != invoice["id"]]
        assert sorted(i["amount"] for i in fake_stripe.items_of(synced["id"])) == [-2000, 900, 1100]
