"""The billing story end to end, with real processes and real clients.

`tollway serve` runs as a process on the real clock with the billing worker inside (short grace and interval)
and Stripe pointed at the fake Stripe API of tests/support/fake_stripe.py (localstripe cannot create an invoice
for given items nor finalize one, see tests/integration/test_stripe_localstripe.py).

Time is laid out so that nothing depends on when the worker runs: plan Starter bills every hour (PT1H). The
customer's subscription is created last, starting 70 minutes ago, so its first period [S, S + 1 h) ended 10
minutes ago and the second one holds now. Usage for the first period goes in through POST /api/v1/events with
explicit times inside it (plus one event before S, which must not be billed); the gateway's own usage (six
requests with the openai SDK, one with the anthropic SDK) lands in the current period and shows in the
preview. Only once all of it is stored is the subscription created, so the worker's first look at it finds
the first period complete and closes it exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import stripe

from tests.support.closing import Closing
from tests.support.fake_stripe import FakeStripe
from tests.support.net import wait_until
from tests.support.tollway_process import TollwayProcess

STRIPE_KEY = "sk_test_billing_story"
WEBHOOK_SECRET = "whsec_billing_story_secret"
INPUT_PRICE = Decimal("0.000003")
OUTPUT_PRICE = Decimal("0.00001")
CENT = Decimal("0.01")
REPLY_TOKENS = 1000

# Usage of the closed period, sent as events: (minutes after the subscription start, token type, tokens).
PAST_USAGE = ((5, "input", 100_000), (20, "input", 23_457), (20, "output", 54_321), (40, "output", 1_000))
BEFORE_START = (-5, "input", 999_999)  # before the subscription starts: never billed

CONFIG: dict[str, Any] = {
    "providers": [{"name": "local", "type": "simulator", "reply_tokens": REPLY_TOKENS}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [{"username": "acme-corp", "keys": ["acme-secret-key"]}],
    "features": [
        {"key": "input-tokens", "meter": "llm_tokens", "filters": {"type": "input"}},
        {"key": "output-tokens", "meter": "llm_tokens", "filters": {"type": "output"}},
    ],
    "plans": [
        {
            "key": "starter",
            "name": "Starter",
            "currency": "USD",
            "billing_cadence": "PT1H",
            "rate_cards": [
                {"feature": "input-tokens", "price": {"type": "unit", "amount": "0.000003"}},
                {"feature": "output-tokens", "price": {"type": "unit", "amount": "0.00001"}},
            ],
        }
    ],
    "customers": [{"key": "acme", "name": "Acme Corp", "usage_from": ["acme-corp"]}],
}


def cents(quantity: int, price: Decimal) -> int:
    """quantity x price rounded half-up to cents, as integer cents."""
    return int((quantity * price).quantize(CENT, ROUND_HALF_UP) / CENT)


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ticket_log(seed: int, lines: int = 200) -> str:
    return "\n".join(
        f"Ticket {seed}-{n:04d}: the dashboard shows request {n} as slow; the customer asks for a refund."
        for n in range(lines)
    )


def test_usage_becomes_a_previewed_then_closed_invoice_synced_to_stripe_and_paid_by_webhook(
    workdir: Path, fake_stripe: FakeStripe, closing: Closing
) -> None:
    gateway = TollwayProcess(
        workdir,
        CONFIG,
        env={
            "TOLLWAY_INVOICE_GRACE_S": "1",
            "TOLLWAY_BILLING_INTERVAL_S": "0.2",
            "TOLLWAY_STRIPE_SECRET_KEY": STRIPE_KEY,
            "TOLLWAY_STRIPE_API_BASE": fake_stripe.origin,
            "TOLLWAY_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        },
    ).start()
    try:
        admin = gateway.admin()
        start = (datetime.now(UTC) - timedelta(minutes=70)).replace(microsecond=0)
        period_end = start + timedelta(hours=1)

        # 1. Usage of the period that will close: events with explicit times (one before the subscription).
        events = [
            {
                "specversion": "1.0",
                "id": f"past-{n}",
                "source": "billing-story",
                "type": "llm.tokens",
                "subject": "acme-corp",
                "time": rfc3339(start + timedelta(minutes=minutes)),
                "data": {"tokens": tokens, "type": kind, "model": "demo", "provider": "local", "status_code": 200},
            }
            for n, (minutes, kind, tokens) in enumerate((*PAST_USAGE, BEFORE_START))
        ]
        sent = admin.post(
            "/api/v1/events",
            content=json.dumps(events),
            headers={"Content-Type": "application/cloudevents-batch+json"},
        )
        assert sent.status_code < 300, sent.text
        past = {
            "input": sum(t for _, kind, t in PAST_USAGE if kind == "input"),
            "output": sum(t for _, kind, t in PAST_USAGE if kind == "output"),
        }
        assert past == {"input": 123_457, "output": 55_321}
        window = {"from": rfc3339(start), "to": rfc3339(period_end)}
        wait_until(lambda: gateway.tokens_by_type("acme-corp", **window) == past, timeout_s=10)

        # 2. Gateway traffic in the current period, as the official SDKs send it.
        sdk = closing(openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="acme-secret-key", max_retries=0))
        long_prompt = "Summarise these tickets.\n" + ticket_log(0)
        prompts = [
            (long_prompt, False),
            (long_prompt, True),  # the same long prompt again: the provider serves part of it from its cache
            ("Which tickets are about billing?\n" + ticket_log(1), False),
            ("Group the tickets by product area.\n" + ticket_log(2), True),
            ("Draft a reply to ticket 3-0007.\n" + ticket_log(3), False),
            ("Write release notes for these fixes.\n" + ticket_log(4), True),
        ]
        usages: list[Any] = []
        for text, streamed in prompts:
            messages: Any = [{"role": "user", "content": text}]
            if streamed:
                chunks = list(
                    sdk.chat.completions.create(
                        model="demo", messages=messages, stream=True, stream_options={"include_usage": True}
                    )
                )
                assert chunks[-1].usage is not None
                usages.append(chunks[-1].usage)
            else:
                completion = sdk.chat.completions.create(model="demo", messages=messages)
                assert completion.usage is not None
                usages.append(completion.usage)
        sdk.close()
        claude = closing(anthropic.Anthropic(base_url=gateway.base_url, api_key="acme-secret-key", max_retries=0))
        message = claude.messages.create(
            model="demo",
            max_tokens=4096,
            messages=[{"role": "user", "content": "What changed this week?\n" + ticket_log(5)}],
        )
        claude.close()

        # What the simulator must report, worked out from its documented tokenizer (each word and each
        # punctuation mark one token, 3 per message plus 3 for the reply): a ticket line is 20 tokens
        # ("Ticket", "0", "-", "0000", ":", 14 more words and marks, "."), a log of 200 lines 4000; the first
        # line of each prompt adds 4, 4, 6, 7, 9, 7 and 5 tokens. The repeated long prompt (4010 tokens) is
        # served from the cache in 128-token steps: 31 x 128 = 3968.
        cached = [u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else 0 for u in usages]
        assert [u.prompt_tokens for u in usages] == [4010, 4010, 4012, 4013, 4015, 4013]
        assert cached == [0, 3968, 0, 0, 0, 0]
        assert [u.completion_tokens for u in usages] == [REPLY_TOKENS] * 6
        assert (message.usage.input_tokens, message.usage.output_tokens) == (4011, REPLY_TOKENS)
        # Input excludes the tokens served from cache: 4010 + 42 + 4012 + 4013 + 4015 + 4013 + 4011.
        current = {"input": 24_116, "output": 7 * REPLY_TOKENS}

        # 3. The subscription, created last: its first period is already over.
        created = admin.post(
            "/api/v1/subscriptions",
            json={"customerKey": "acme", "plan": {"key": "starter"}, "activeFrom": rfc3339(start)},
        )
        assert created.status_code == 201, created.text

        # 4. Preview of the current period: the gateway's usage, charged as computed here.
        def preview() -> dict[str, Any]:
            answer = admin.get("/api/v1/invoices/preview", params={"customer": "acme"})
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body

        def quantities(invoice: dict[str, Any]) -> dict[str, int]:
            return {line["featureKey"]: int(Decimal(line["quantity"])) for line in invoice["lines"]}

        expected_now = {"input-tokens": current["input"], "output-tokens": current["output"]}
        wait_until(lambda: quantities(preview()) == expected_now, timeout_s=10)
        live = preview()
        assert live["status"] == "draft"
        assert live["period"] == {"from": rfc3339(period_end), "to": rfc3339(period_end + timedelta(hours=1))}
        live_cents = {
            "input-tokens": cents(current["input"], INPUT_PRICE),
            "output-tokens": cents(current["output"], OUTPUT_PRICE),
        }
        assert {line["featureKey"]: line["amountMinor"] for line in live["lines"]} == live_cents
        assert live["totalMinor"] == sum(live_cents.values())

        # 5. The worker inside serve closes the first period, issues it and pushes it to Stripe.
        def invoices() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = admin.get("/api/v1/invoices", params={"customer": "acme"}).json()["items"]
            return items

        wait_until(lambda: any(i["stripeInvoiceId"] for i in invoices()), timeout_s=15)
        time.sleep(1.0)  # five more worker rounds: still one invoice, still one Stripe invoice
        [invoice] = invoices()
        expected_cents = {
            "input-tokens": cents(past["input"], INPUT_PRICE),  # 123,457 x 0.000003 = 0.370371 -> 37
            "output-tokens": cents(past["output"], OUTPUT_PRICE),  # 55,321 x 0.00001 = 0.55321 -> 55
        }
        assert expected_cents == {"input-tokens": 37, "output-tokens": 55}
        assert invoice["status"] == "issued"
        assert invoice["number"].startswith(f"TW-{datetime.now(UTC).year}-")
        assert invoice["period"] == {"from": rfc3339(start), "to": rfc3339(period_end)}
        assert quantities(invoice) == {"input-tokens": past["input"], "output-tokens": past["output"]}
        assert {line["featureKey"]: line["amountMinor"] for line in invoice["lines"]} == expected_cents
        assert invoice["totalMinor"] == 92

        # 6. Stripe holds exactly one invoice for the customer, one item per line, finalized.
        [stripe_customer] = fake_stripe.state.customers.values()
        assert stripe_customer["metadata"]["tollway_customer_key"] == "acme"
        [only] = fake_stripe.state.invoices.values()
        stripe_id = invoice["stripeInvoiceId"]
        assert only["id"] == stripe_id
        client = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": fake_stripe.origin}, max_network_retries=0)
        remote = client.v1.invoices.retrieve(stripe_id)
        assert remote.status == "open"
        assert remote.customer == stripe_customer["id"]
        assert remote.metadata is not None
        assert remote.metadata["tollway_invoice_id"] == invoice["id"]
        items = client.v1.invoice_items.list({"invoice": stripe_id}).data
        assert sorted(item.amount for item in items) == sorted(expected_cents.values())
        assert remote.total == 92

        # 7. Stripe reports the payment with a signed webhook (no admin token: the signature authenticates).
        now = int(time.time())
        event = {
            "id": "evt_billing_story_paid",
            "object": "event",
            "type": "invoice.paid",
            "created": now,
            "data": {
                "object": {
                    "id": stripe_id,
                    "object": "invoice",
                    "status": "paid",
                    "metadata": {"tollway_invoice_id": invoice["id"]},
                    "status_transitions": {"paid_at": now},
                }
            },
        }
        payload = json.dumps(event).encode()
        signature = hmac.new(WEBHOOK_SECRET.encode(), f"{now}.".encode() + payload, hashlib.sha256).hexdigest()
        hook = httpx.post(
            gateway.base_url + "/api/v1/stripe/webhook",
            content=payload,
            headers={"Content-Type": "application/json", "Stripe-Signature": f"t={now},v1={signature}"},
            timeout=10,
        )
        assert hook.status_code == 200, hook.text
        assert hook.json()["action"] == "paid"
        paid = admin.get(f"/api/v1/invoices/{invoice['id']}").json()
        assert paid["status"] == "paid"
        assert paid["number"] == invoice["number"]
        assert len(invoices()) == 1
        assert len(fake_stripe.state.invoices) == 1
        admin.close()
    finally:
        assert gateway.stop() == 0, gateway.log()
