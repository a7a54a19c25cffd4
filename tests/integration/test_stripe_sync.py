"""StripeSync through the official `stripe` SDK against the fake Stripe API (tests/support/fake_stripe.py):
one Stripe customer, one invoice, one item per line, finalized, whatever step a crash or a lost reply hits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.support.fake_stripe import FakeStripe
from tests.support.stripe_invoices import ACME, FEB, JAN, CrashingStore, Customers, issued_invoice
from tollway.adapters.stripe.client import StripeApi, StripeCustomerParams
from tollway.adapters.stripe.sync import StripeSync
from tollway.billing.invoicing.model import Invoice, InvoiceLine
from tollway.billing.invoicing.ports import STRIPE_SYNC, STRIPE_VOID, IssueRequest
from tollway.clock import FrozenClock

JAN_UNIX, FEB_UNIX, MAR_UNIX = 1767225600, 1769904000, 1772323200  # 20454, 20485 and 20513 days x 86400


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 2, 1, 2, 0, tzinfo=UTC))


@pytest.fixture
def store(clock: FrozenClock) -> CrashingStore:
    return CrashingStore(clock)


@pytest.fixture
async def api(fake_stripe: FakeStripe) -> AsyncIterator[StripeApi]:
    client = StripeApi("sk_test_tollway", api_base=fake_stripe.origin)
    yield client
    await client.close()


@pytest.fixture
def customers() -> Customers:
    return Customers(ACME)


@pytest.fixture
def sync(store: CrashingStore, customers: Customers, api: StripeApi, clock: FrozenClock) -> StripeSync:
    return StripeSync(store=store, customers=customers, api=api, clock=clock)


def assert_synced_once(fake_stripe: FakeStripe, invoice: Invoice) -> None:
    assert len(fake_stripe.state.customers) == 1
    assert len(fake_stripe.state.invoices) == 1
    (stripe_invoice,) = fake_stripe.state.invoices.values()
    assert stripe_invoice["status"] == "open"
    items = fake_stripe.items_of(stripe_invoice["id"])
    assert sorted(i["metadata"]["tollway_line_id"] for i in items) == ["inv01-1", "inv01-2", "inv01-3"]
    assert sorted(i["amount"] for i in items) == [-150, 1235, 4900]
    assert len(fake_stripe.state.items) == 3  # nothing left pending on the customer either
    assert invoice.stripe_invoice_id == stripe_invoice["id"]
    assert invoice.stripe_status == "open"
    assert {line.id: line.stripe_invoice_item_id for line in invoice.lines} == {
        i["metadata"]["tollway_line_id"]: i["id"] for i in items
    }


async def test_an_issued_invoice_becomes_one_finalized_stripe_invoice_with_an_item_per_line(
    fake_stripe: FakeStripe, store: CrashingStore, sync: StripeSync, customers: Customers, clock: FrozenClock
) -> None:
    invoice = await issued_invoice(store, clock)

    assert await sync.run_once() == 1

    stored = await store.get_invoice(invoice.id)
    assert stored is not None
    assert_synced_once(fake_stripe, stored)
    (stripe_customer,) = fake_stripe.state.customers.values()
    assert stripe_customer["name"] == "Acme Corp"
    assert stripe_customer["email"] == "billing@acme.test"
    assert stripe_customer["address"] == {
        "line1": "Alexanderplatz 1",
        "city": "Berlin",
        "postal_code": "10178",
        "country": "DE",
    }
    assert stripe_customer["metadata"] == {"tollway_customer_id": "cus01", "tollway_customer_key": "acme"}
    assert customers.by_id["cus01"].stripe_customer_id == stripe_customer["id"]

    (stripe_invoice,) = fake_stripe.state.invoices.values()
    assert stripe_invoice["customer"] == stripe_customer["id"]
    assert stripe_invoice["currency"] == "usd"
    assert stripe_invoice["number"] == "TW-2026-000001"
    assert stripe_invoice["metadata"]["tollway_invoice_id"] == "inv01"
    assert stripe_invoice["metadata"]["tollway_customer_id"] == "cus01"
    assert stripe_invoice["auto_advance"] is True  # set on finalize: Stripe collects it
    create = next(c for c in fake_stripe.calls if c.path == "/v1/invoices")
    assert create.params["pending_invoice_items_behavior"] == "exclude"
    assert create.params["auto_advance"] == "false"

    by_line = {i["metadata"]["tollway_line_id"]: i for i in fake_stripe.items_of(stripe_invoice["id"])}
    usage = by_line["inv01-1"]
    assert usage["description"] == "1,234,567 output tokens x $0.00001"
    assert usage["amount"] == 1235
    assert usage["currency"] == "usd"
    assert usage["period"] == {"start": JAN_UNIX, "end": FEB_UNIX}
    assert usage["metadata"]["tollway_invoice_id"] == "inv01"
    assert usage["metadata"]["tollway_customer_id"] == "cus01"
    assert by_line["inv01-2"]["period"] == {"start": FEB_UNIX, "end": MAR_UNIX}
    adjustment = by_line["inv01-3"]
    assert adjustment["amount"] == -150
    assert adjustment["description"] == "Adjustment 2025-12-01 to 2026-01-01: late usage re-rated"
    assert adjustment["metadata"]["tollway_adjusts_invoice_id"] == "inv00"

    every_post = [c for c in fake_stripe.calls if c.method == "POST"]
    assert all(c.idempotency_key for c in every_post)
    assert len({c.idempotency_key for c in every_post}) == len(every_post)
    (outbox,) = await store.get_outbox(invoice.id)
    assert outbox.done_at == clock.now()
    assert await sync.run_once() == 0  # done rows are not claimed again


STEPS = [
    ("customer", "POST", r"/v1/customers"),
    ("invoice", "POST", r"/v1/invoices"),
    ("first item", "POST", r"/v1/invoiceitems"),
    ("finalize", "POST", r"/v1/invoices/[^/]+/finalize"),
]


@pytest.mark.parametrize(("step", "method", "pattern"), STEPS, ids=[s[0] for s in STEPS])
async def test_a_reply_lost_after_any_stripe_step_is_resumed_without_duplicates(
    fake_stripe: FakeStripe,
    store: CrashingStore,
    sync: StripeSync,
    clock: FrozenClock,
    step: str,
    method: str,
    pattern: str,
) -> None:
    invoice = await issued_invoice(store, clock)
    fake_stripe.fail(method, pattern, 500, after=True)  # Stripe did it; Tollway never heard back

    assert await sync.run_once() == 0
    (failed,) = await store.get_outbox(invoice.id)
    assert failed.done_at is None
    assert failed.last_error is not None
    assert failed.last_error.startswith("unavailable: ")
    assert failed.next_attempt_at == clock.now() + timedelta(seconds=30)

    clock.advance(timedelta(seconds=30))
    assert await sync.run_once() == 1

    stored = await store.get_invoice(invoice.id)
    assert stored is not None
    assert_synced_once(fake_stripe, stored)


@pytest.mark.parametrize("crash_on", [1, 2, 3, 4, 5], ids=["invoice", "item1", "item2", "item3", "status"])
async def test_a_crash_before_a_step_is_recorded_is_resumed_without_duplicates(
    fake_stripe: FakeStripe, store: CrashingStore, sync: StripeSync, clock: FrozenClock, crash_on: int
) -> None:
    invoice = await issued_invoice(store, clock)
    store.crash_on = crash_on

    assert await sync.run_once() == 0
    clock.advance(timedelta(seconds=30))
    assert await sync.run_once() == 1

    stored = await store.get_invoice(invoice.id)
    assert stored is not None
    assert_synced_once(fake_stripe, stored)


async def test_items_are_not_duplicated_even_when_stripe_forgot_the_idempotency_keys(
    fake_stripe: FakeStripe, store: CrashingStore, sync: StripeSync, clock: FrozenClock
) -> None:
    """Idempotency keys expire after 24 hours; the items on the Stripe invoice are looked up by metadata."""
    invoice = await issued_invoice(store, clock)
    fake_stripe.idempotency = False
    store.crash_on = 3  # the second item exists in Stripe, not in Tollway

    assert await sync.run_once() == 0
    clock.advance(timedelta(days=2))
    assert await sync.run_once() == 1

    stored = await store.get_invoice(invoice.id)
    assert stored is not None
    assert_synced_once(fake_stripe, stored)


async def test_a_stripe_outage_is_retried_with_capped_exponential_backoff(
    fake_stripe: FakeStripe, store: CrashingStore, customers: Customers, api: StripeApi, clock: FrozenClock
) -> None:
    sync = StripeSync(store=store, customers=customers, api=api, clock=clock, first_retry_s=10, max_retry_s=60)
    invoice = await issued_invoice(store, clock)
    delays = []
    for _ in range(5):
        fake_stripe.fail("POST", r"/v1/customers", 503)
        assert await sync.run_once() == 0
        (row,) = await store.get_outbox(invoice.id)
        delays.append((row.next_attempt_at - clock.now()).total_seconds())
        assert await sync.run_once() == 0  # not due yet
        clock.set(row.next_attempt_at)
    assert delays == [10, 20, 40, 60, 60]
    assert await sync.run_once() == 1
    stored = await store.get_invoice(invoice.id)
    assert stored is not None
    assert_synced_once(fake_stripe, stored)


async def test_a_refused_request_is_recorded_with_stripes_message_and_retried(
    fake_stripe: FakeStripe, store: CrashingStore, sync: StripeSync, customers: Customers, clock: FrozenClock
) -> None:
    customers.by_id["cus01"] = replace(ACME, stripe_customer_id="cus_gone")
    invoice = await issued_invoice(store, clock)

    assert await sync.run_once() == 0

    (row,) = await store.get_outbox(invoice.id)
    assert row.last_error == "validation: Stripe: No such customer: 'cus_gone'"
    assert fake_stripe.state.invoices == {}


async def test_a_voided_invoice_voids_its_stripe_copy_and_an_unsynced_one_is_never_sent(
    fake_stripe: FakeStripe, store: CrashingStore, sync: StripeSync, clock: FrozenClock
) -> None:
    synced = await issued_invoice(store, clock, "inv01")
    assert await sync.run_once() == 1
    await store.set_status(synced.id, "void", at=clock.now(), enqueue=(STRIPE_VOID,))
    never = await issued_invoice(store, clock, "inv02")
    await store.set_status(never.id, "void", at=clock.now(), enqueue=(STRIPE_VOID,))

    assert await sync.run_once() == 3  # inv02's sync (skipped: void), then both voids

    (stripe_invoice,) = fake_stripe.state.invoices.values()
    assert stripe_invoice["status"] == "void"
    stored = await store.get_invoice(synced.id)
    assert stored is not None
    assert stored.stripe_status == "void"
    skipped = await store.get_invoice(never.id)
    assert skipped is not None
    assert skipped.stripe_invoice_id is None


async def test_a_void_before_finalize_deletes_the_stripe_draft(
    fake_stripe: FakeStripe, store: CrashingStore, sync: StripeSync, clock: FrozenClock
) -> None:
    invoice = await issued_invoice(store, clock)
    fake_stripe.fail("POST", r"/v1/invoices/[^/]+/finalize", 503)
    assert await sync.run_once() == 0
    await store.set_status(invoice.id, "void", at=clock.now(), enqueue=(STRIPE_VOID,))

    clock.advance(timedelta(minutes=1))
    assert await sync.run_once() == 2

    assert fake_stripe.state.invoices == {}
    assert fake_stripe.state.items == {}
    stored = await store.get_invoice(invoice.id)
    assert stored is not None
    assert stored.stripe_status == "deleted"


async def test_a_customer_edited_while_stripe_creates_its_copy_keeps_the_edit(
    fake_stripe: FakeStripe, store: CrashingStore, customers: Customers, clock: FrozenClock
) -> None:
    """The sync stores the Stripe customer id on the customer as it is once Stripe answered, not as it was read
    before: a rename made meanwhile (an apply, the API) stays."""

    class RenamingApi(StripeApi):
        async def create_customer(self, params: StripeCustomerParams, *, idempotency_key: str) -> str:
            customers.by_id["cus01"] = replace(customers.by_id["cus01"], name="Acme Inc")
            return await super().create_customer(params, idempotency_key=idempotency_key)

    api = RenamingApi("sk_test_tollway", api_base=fake_stripe.origin)
    try:
        await issued_invoice(store, clock)
        assert await StripeSync(store=store, customers=customers, api=api, clock=clock).run_once() == 1
    finally:
        await api.close()
    (stripe_customer,) = fake_stripe.state.customers.values()
    linked = customers.by_id["cus01"]
    assert (linked.name, linked.stripe_customer_id) == ("Acme Inc", stripe_customer["id"])


async def test_credits_applied_reach_stripe_as_a_negative_item_so_it_collects_the_total_due(
    fake_stripe: FakeStripe, store: CrashingStore, sync: StripeSync, clock: FrozenClock
) -> None:
    usage = InvoiceLine("usage", "output", "2,700,000 output tokens x $0.00001", JAN, FEB, Decimal("27"), 2700)
    credit = InvoiceLine("credit", "credits", "Credits applied: December credits", JAN, FEB, Decimal("-20"), -2000)
    draft = Invoice(
        "inv09", ACME.id, "USD", "draft", JAN, FEB, (usage, credit), 700, subscription_id="sub01", billing_key="sub01:c"
    )
    issue = IssueRequest(issued_at=clock.now(), due_at=clock.now() + timedelta(days=14), enqueue=(STRIPE_SYNC,))
    assert await store.create_invoice(draft, issue=issue) is not None
    assert await sync.run_once() == 1
    (stripe_invoice,) = fake_stripe.state.invoices.values()
    items = {i["description"]: i["amount"] for i in fake_stripe.items_of(stripe_invoice["id"])}
    assert items == {"2,700,000 output tokens x $0.00001": 2700, "Credits applied: December credits": -2000}
    assert sum(items.values()) == 700  # what Stripe collects: the items' sum, Tollway's total due
