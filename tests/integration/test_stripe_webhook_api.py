"""POST /api/v1/stripe/webhook through the management app (in-process ASGI): signature checks (bad, stale,
future, tolerance in both directions), event application, replayed event ids, no admin token needed.
Signatures are computed here with hmac directly and cross-checked against the official stripe SDK's verifier."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import orjson
import pytest
import stripe

from tollway.adapters.memory.invoices import MemoryInvoiceStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.adapters.stripe.webhooks import StripeWebhooks, verify_signature
from tollway.api.app import create_management_app
from tollway.billing.invoicing.model import Invoice, InvoiceLine
from tollway.billing.invoicing.ports import IssueRequest
from tollway.clock import FrozenClock
from tollway.errors import ValidationError
from tollway.metering.service import MeteringService

SECRET = "whsec_test_0123456789abcdef"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_UNIX = 1772366400  # 2026-03-01: 20513 days x 86400, + 12 h
PAID_AT = 1772366000


def signature(payload: bytes, timestamp: int, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(event_id: str, event_type: str, invoice_id: str | None = "inv01", **fields: object) -> bytes:
    obj: dict[str, object] = {"id": "in_stripe01", "object": "invoice", "status": "paid", **fields}
    obj["metadata"] = {"tollway_invoice_id": invoice_id} if invoice_id else {}
    return orjson.dumps({"id": event_id, "object": "event", "type": event_type, "data": {"object": obj}})


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def store(clock: FrozenClock) -> MemoryInvoiceStore:
    store = MemoryInvoiceStore(clock)
    line = InvoiceLine(
        kind="flat",
        rate_card_key="platform-fee",
        description="Platform fee",
        period_start=NOW - timedelta(days=28),
        period_end=NOW,
        amount=Decimal(49),
        amount_minor=4900,
    )
    for invoice_id in ("inv01", "inv02"):
        draft = Invoice(
            id=invoice_id,
            customer_id="cus01",
            currency="USD",
            status="draft",
            period_start=NOW - timedelta(days=28),
            period_end=NOW,
            lines=(line,),
            total_minor=4900,
            billing_key=f"sub01:{invoice_id}",
        )
        issued = await store.create_invoice(draft, issue=IssueRequest(issued_at=NOW, due_at=NOW + timedelta(days=7)))
        assert issued is not None
    await store.record_stripe_ids("inv01", stripe_invoice_id="in_stripe01", stripe_status="open")
    return store


@pytest.fixture
async def client(store: MemoryInvoiceStore, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_management_app(
        metering=MeteringService(MemoryEventStore(clock), clock),
        admin_token="admin-token-0123456789",
        stripe_webhooks=StripeWebhooks(secret=SECRET, store=store, clock=clock),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tollway") as http:
        yield http


async def post(client: httpx.AsyncClient, payload: bytes, header: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    return await client.post("/api/v1/stripe/webhook", content=payload, headers=headers)


def test_signatures_made_here_are_the_ones_the_stripe_sdk_accepts() -> None:
    payload = event("evt_1", "invoice.paid")
    header = signature(payload, NOW_UNIX)
    stripe.WebhookSignature.verify_header(payload.decode(), header, SECRET, tolerance=None)
    assert verify_signature(payload, header, SECRET, now=NOW) == NOW_UNIX


@pytest.mark.parametrize("skew", [-300, -299, 0, 299, 300])
def test_timestamps_within_300_seconds_either_way_are_accepted(skew: int) -> None:
    payload = event("evt_1", "invoice.paid")
    assert verify_signature(payload, signature(payload, NOW_UNIX + skew), SECRET, now=NOW) == NOW_UNIX + skew


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing Stripe-Signature header"),
        ("", "missing Stripe-Signature header"),
        ("v1=abc", "Stripe-Signature must carry t=... and v1=..."),
        (f"t={NOW_UNIX}", "Stripe-Signature must carry t=... and v1=..."),
        ("t=soon,v1=abc", "Stripe-Signature: t is not a unix time"),
        (f"t={NOW_UNIX},v1={'0' * 64}", "Stripe-Signature does not match the payload and secret"),
        (f"t={NOW_UNIX - 301},v1=abc", "Stripe-Signature timestamp is too old (301 s off; tolerance 300 s)"),
        (
            f"t={NOW_UNIX + 301},v1=abc",
            "Stripe-Signature timestamp is too far in the future (301 s off; tolerance 300 s)",
        ),
    ],
)
def test_bad_headers_are_refused_with_the_reason(header: str | None, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        verify_signature(event("evt_1", "invoice.paid"), header, SECRET, now=NOW)
    assert refused.value.message == message
    assert refused.value.field == "Stripe-Signature"


def test_any_matching_v1_is_enough_during_a_secret_rotation() -> None:
    payload = event("evt_1", "invoice.paid")
    good = signature(payload, NOW_UNIX).split("v1=")[1]
    old = signature(payload, NOW_UNIX, secret="whsec_old").split("v1=")[1]
    assert verify_signature(payload, f"t={NOW_UNIX},v1={old},v1={good},v0=zzz", SECRET, now=NOW) == NOW_UNIX


async def test_invoice_paid_marks_the_invoice_paid_at_stripes_time_without_an_admin_token(
    client: httpx.AsyncClient, store: MemoryInvoiceStore
) -> None:
    payload = event("evt_paid", "invoice.paid", status_transitions={"paid_at": PAID_AT})

    response = await post(client, payload, signature(payload, NOW_UNIX))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": True,
        "id": "evt_paid",
        "type": "invoice.paid",
        "duplicate": False,
        "action": "paid",
        "invoiceId": "inv01",
    }
    invoice = await store.get_invoice("inv01")
    assert invoice is not None
    assert invoice.status == "paid"
    assert invoice.paid_at == datetime(2026, 3, 1, 11, 53, 20, tzinfo=UTC)  # PAID_AT = NOW_UNIX - 400 s
    assert invoice.stripe_status == "paid"


async def test_a_replayed_event_id_is_a_duplicate_and_changes_nothing(
    client: httpx.AsyncClient, store: MemoryInvoiceStore, clock: FrozenClock
) -> None:
    voided = event("evt_void", "invoice.voided", status="void")
    assert (await post(client, voided, signature(voided, NOW_UNIX))).json()["action"] == "void"
    before = await store.get_invoice("inv01")

    clock.advance(timedelta(minutes=1))
    replay = await post(client, voided, signature(voided, NOW_UNIX + 60))

    assert replay.status_code == 200
    assert replay.json()["duplicate"] is True
    assert await store.get_invoice("inv01") == before


@pytest.mark.parametrize(
    ("offset", "expected"), [(-301, "too old"), (301, "too far in the future"), (0, "does not match")]
)
async def test_a_refused_signature_is_a_400_naming_the_header_and_changes_nothing(
    client: httpx.AsyncClient, store: MemoryInvoiceStore, offset: int, expected: str
) -> None:
    payload = event("evt_paid", "invoice.paid")
    header = signature(payload, NOW_UNIX + offset, secret=SECRET if offset else "whsec_wrong")

    response = await post(client, payload, header)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "Stripe-Signature"
    assert expected in response.json()["detail"]
    invoice = await store.get_invoice("inv01")
    assert invoice is not None
    assert invoice.status == "issued"
    assert await store.record_webhook_event("evt_paid", received_at=NOW) is True  # never recorded


async def test_a_tampered_body_is_refused(client: httpx.AsyncClient, store: MemoryInvoiceStore) -> None:
    payload = event("evt_paid", "invoice.paid")
    header = signature(payload, NOW_UNIX)
    response = await post(client, payload.replace(b"inv01", b"inv02"), header)
    assert response.status_code == 400
    invoice = await store.get_invoice("inv02")
    assert invoice is not None
    assert invoice.status == "issued"


async def test_uncollectible_then_paid_follows_the_lifecycle_and_an_illegal_event_is_acknowledged_and_ignored(
    client: httpx.AsyncClient, store: MemoryInvoiceStore
) -> None:
    steps = [
        (event("evt_1", "invoice.marked_uncollectible", status="uncollectible"), "uncollectible"),
        (event("evt_2", "invoice.paid"), "paid"),
        (event("evt_3", "invoice.voided", status="void"), "ignored: invoice inv01 is paid: it cannot become void"),
    ]
    for payload, action in steps:
        response = await post(client, payload, signature(payload, NOW_UNIX))
        assert response.status_code == 200
        assert response.json()["action"] == action
    invoice = await store.get_invoice("inv01")
    assert invoice is not None
    assert invoice.status == "paid"
    assert invoice.uncollectible_at == NOW


async def test_payment_failed_only_records_stripes_status(client: httpx.AsyncClient, store: MemoryInvoiceStore) -> None:
    payload = event("evt_failed", "invoice.payment_failed", status="open")
    response = await post(client, payload, signature(payload, NOW_UNIX))
    assert response.json()["action"] == "recorded"
    invoice = await store.get_invoice("inv01")
    assert invoice is not None
    assert (invoice.status, invoice.stripe_status) == ("issued", "open")


@pytest.mark.parametrize(
    ("payload", "action"),
    [
        (event("evt_a", "customer.created"), "ignored: customer.created is not handled"),
        (
            event("evt_b", "invoice.paid", invoice_id=None),
            "ignored: not a Tollway invoice (no tollway_invoice_id metadata)",
        ),
        (event("evt_c", "invoice.paid", invoice_id="nope"), "ignored: invoice nope does not exist"),
        (event("evt_d", "invoice.paid", id="in_other"), "ignored: invoice inv01 is Stripe invoice in_stripe01"),
    ],
)
async def test_events_about_something_else_are_acknowledged_and_ignored(
    client: httpx.AsyncClient, store: MemoryInvoiceStore, payload: bytes, action: str
) -> None:
    response = await post(client, payload, signature(payload, NOW_UNIX))
    assert response.status_code == 200
    assert response.json()["action"] == action
    invoice = await store.get_invoice("inv01")
    assert invoice is not None
    assert invoice.status == "issued"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (b'{"type": "invoice.paid", "data": {"object": {}}}', "id"),
        (b'{"id": "evt_x", "type": "invoice.paid"}', "data.object"),
    ],
)
async def test_a_signed_but_malformed_body_is_a_400_naming_the_field(
    client: httpx.AsyncClient, payload: bytes, field: str
) -> None:
    response = await post(client, payload, signature(payload, NOW_UNIX))
    assert response.status_code == 400
    assert response.json()["field"] == field


async def test_without_a_webhook_secret_the_endpoint_says_so(clock: FrozenClock) -> None:
    app = create_management_app(metering=MeteringService(MemoryEventStore(clock), clock), admin_token=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tollway") as http:
        payload = event("evt_1", "invoice.paid")
        response = await post(http, payload, signature(payload, NOW_UNIX))
    assert response.status_code == 503
    assert "TOLLWAY_STRIPE_WEBHOOK_SECRET" in response.json()["detail"]
