"""The Stripe outbox racing Tollway's own status changes (mark-paid, void, mark-uncollectible) and Stripe's
invoice.paid webhook, in every order: once an invoice is paid, void or uncollectible nothing more is pushed
(no Stripe finalize after it), a Stripe draft already made is deleted, and an invoice Stripe had already
finalized is paid out of band, voided or marked uncollectible, so Stripe never charges it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.fake_stripe import FakeStripe
from tests.support.stripe_invoices import ACME, Customers, issued_invoice
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.invoices import MemoryInvoiceStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.invoices import SqlInvoiceStore
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.stripe.client import StripeApi, StripeCustomerParams, StripeInvoiceState
from tollway.adapters.stripe.sync import StripeSync
from tollway.adapters.stripe.webhooks import StripeWebhooks
from tollway.billing.invoicing.model import Invoice
from tollway.billing.invoicing.service import InvoiceService
from tollway.clock import FrozenClock

SECRET = "whsec_races"
Change = Callable[[InvoiceService, str], Awaitable[Invoice]]
CHANGES: dict[str, Change] = {
    "mark-paid": lambda service, invoice_id: service.mark_paid(invoice_id),
    "void": lambda service, invoice_id: service.void(invoice_id),
    "mark-uncollectible": lambda service, invoice_id: service.mark_uncollectible(invoice_id),
}
# What an invoice Stripe had already finalized becomes once Tollway's change reaches it.
SETTLED = {"mark-paid": "paid", "void": "void", "mark-uncollectible": "uncollectible"}
# The sync's reads of the invoice, in order: at the start, after the customer, before each of the three
# items, before finalize. A change "at read n" commits just before that read.
READS = 6


class RacingStore(MemoryInvoiceStore):
    """Runs `change` just before the sync's n-th read of the invoice (a change committed between two steps)."""

    change_at: int | None = None
    change: Callable[[], Awaitable[object]] | None = None
    reads = 0

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        self.reads += 1
        if self.reads == self.change_at and self.change is not None:
            await self.change()
        return await super().get_invoice(invoice_id)


class RacingApi(StripeApi):
    """Runs `change` while a finalize is on its way to Stripe (after the sync's last look)."""

    change: Callable[[], Awaitable[object]] | None = None

    async def finalize_invoice(self, invoice_id: str, *, idempotency_key: str) -> StripeInvoiceState:
        if self.change is not None:
            await self.change()
        return await super().finalize_invoice(invoice_id, idempotency_key=idempotency_key)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 2, 1, 2, 0, tzinfo=UTC))


@pytest.fixture
async def api(fake_stripe: FakeStripe) -> AsyncIterator[RacingApi]:
    client = RacingApi("sk_test_tollway", api_base=fake_stripe.origin)
    yield client
    await client.close()


def finalizes(fake_stripe: FakeStripe) -> int:
    return sum(1 for c in fake_stripe.calls if c.path.endswith("/finalize"))


async def run_out(sync: StripeSync, clock: FrozenClock) -> None:
    """Work the outbox until nothing is due, as the billing worker would."""
    for _ in range(10):
        clock.advance(timedelta(hours=2))
        if not await sync.run_once():
            return


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("at", [*range(1, READS + 1), "finalize in flight"])
async def test_a_status_change_at_any_step_stops_the_push_and_stripe_never_charges(
    fake_stripe: FakeStripe, api: RacingApi, clock: FrozenClock, change: str, at: int | str
) -> None:
    store = RacingStore(clock)
    service = InvoiceService(store, MemoryCatalogStore(), clock, stripe=True)
    sync = StripeSync(store=store, customers=Customers(ACME), api=api, clock=clock)
    invoice = await issued_invoice(store, clock)

    async def apply() -> None:
        store.change = api.change = None  # once
        await CHANGES[change](service, invoice.id)

    if at == "finalize in flight":
        api.change = apply
    else:
        store.change, store.change_at = apply, int(at)

    await sync.run_once()
    await run_out(sync, clock)

    stored = await store.get_invoice(invoice.id)
    assert stored is not None
    assert stored.status == SETTLED[change]
    assert all(row.done_at is not None for row in await store.get_outbox(invoice.id))
    if at == "finalize in flight":  # Stripe finalized it as Tollway changed it: Stripe's copy follows
        (stripe_invoice,) = fake_stripe.state.invoices.values()
        assert stripe_invoice["status"] == SETTLED[change]
        assert stripe_invoice.get("paid_out_of_band", False) is (change == "mark-paid")
        assert stored.stripe_status == SETTLED[change]
    else:  # changed before the finalize: never finalized, and a draft made before the change deleted
        assert finalizes(fake_stripe) == 0
        assert fake_stripe.state.invoices == {}
        assert fake_stripe.state.items == {}
        assert stored.stripe_status == ("deleted" if stored.stripe_invoice_id else None)


async def test_a_paid_webhook_for_a_finalize_whose_reply_was_lost_ends_the_sync_without_another_write(
    fake_stripe: FakeStripe, api: RacingApi, clock: FrozenClock
) -> None:
    store = MemoryInvoiceStore(clock)
    sync = StripeSync(store=store, customers=Customers(ACME), api=api, clock=clock)
    invoice = await issued_invoice(store, clock)
    fake_stripe.fail("POST", r"/v1/invoices/[^/]+/finalize", 500, after=True)
    assert await sync.run_once() == 0  # finalized in Stripe; Tollway never heard back
    (stripe_id,) = fake_stripe.state.invoices
    fake_stripe.pay(stripe_id, at=clock.now())
    webhooks = StripeWebhooks(secret=SECRET, store=store, clock=clock)
    outcome = await webhooks.receive(*fake_stripe.webhook("invoice.paid", stripe_id, secret=SECRET, at=clock.now()))
    assert outcome.action == "paid"
    writes = sum(1 for c in fake_stripe.calls if c.method in ("POST", "DELETE"))

    await run_out(sync, clock)

    assert sum(1 for c in fake_stripe.calls if c.method in ("POST", "DELETE")) == writes
    (row,) = await store.get_outbox(invoice.id)
    assert row.done_at is not None
    assert row.attempts == 2  # the lost reply, then done: no third attempt
    stored = await store.get_invoice(invoice.id)
    assert stored is not None
    assert (stored.status, stored.stripe_status) == ("paid", "paid")


async def test_mark_paid_then_stripes_own_paid_webhook_agree(
    fake_stripe: FakeStripe, api: RacingApi, clock: FrozenClock
) -> None:
    store = MemoryInvoiceStore(clock)
    service = InvoiceService(store, MemoryCatalogStore(), clock, stripe=True)
    sync = StripeSync(store=store, customers=Customers(ACME), api=api, clock=clock)
    invoice = await issued_invoice(store, clock)
    assert await sync.run_once() == 1  # open in Stripe
    await service.mark_paid(invoice.id)  # collected outside Stripe
    await run_out(sync, clock)
    (stripe_id,) = fake_stripe.state.invoices
    assert fake_stripe.state.invoices[stripe_id]["status"] == "paid"
    assert fake_stripe.state.invoices[stripe_id]["paid_out_of_band"] is True
    webhooks = StripeWebhooks(secret=SECRET, store=store, clock=clock)
    outcome = await webhooks.receive(*fake_stripe.webhook("invoice.paid", stripe_id, secret=SECRET, at=clock.now()))
    assert outcome.action == "paid"  # a no-op: it already is
    stored = await store.get_invoice(invoice.id)
    assert stored is not None
    assert (stored.status, stored.stripe_status) == ("paid", "paid")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_issued_while_stripe_is_down_then_marked_paid_is_never_sent(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fake_stripe: FakeStripe,
    api: RacingApi,
    clock: FrozenClock,
    backend: str,
) -> None:
    """The reported sequence on a real store: the first sync attempt fails, mark-paid, Stripe is back."""
    url = f"sqlite:///{tmp_path / 'races.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    engine = create_sql_engine(url)
    await asyncio.to_thread(upgrade, engine)
    store = SqlInvoiceStore(engine, clock)
    try:
        service = InvoiceService(store, MemoryCatalogStore(), clock, stripe=True)
        sync = StripeSync(store=store, customers=Customers(ACME), api=api, clock=clock)
        invoice = await issued_invoice(store, clock)
        fake_stripe.fail("POST", r"/v1/customers", 503)
        assert await sync.run_once() == 0
        await service.mark_paid(invoice.id)

        await run_out(sync, clock)

        assert [c.path for c in fake_stripe.calls] == ["/v1/customers"]  # the failed try only
        assert fake_stripe.state.invoices == {}
        rows = await store.get_outbox(invoice.id)
        assert sorted((row.kind, row.done_at is not None) for row in rows) == [
            ("stripe.paid", True),
            ("stripe.sync", True),
        ]
    finally:
        await store.close()
        engine.dispose()


async def test_a_clean_stop_hands_back_the_outbox_rows_it_claimed(fake_stripe: FakeStripe, clock: FrozenClock) -> None:
    """Stopped while Stripe is answering its first row: both rows it claimed are due again at once (not after
    the 5-minute lease), and the next process pushes them."""
    reached = asyncio.Event()

    class HangingApi(StripeApi):
        async def create_customer(self, params: StripeCustomerParams, *, idempotency_key: str) -> str:
            reached.set()
            await asyncio.Event().wait()
            raise AssertionError("never answered")

    store = MemoryInvoiceStore(clock)
    hanging = HangingApi("sk_test_tollway", api_base=fake_stripe.origin)
    try:
        sync = StripeSync(store=store, customers=Customers(ACME), api=hanging, clock=clock)
        invoices = [await issued_invoice(store, clock, "inv01"), await issued_invoice(store, clock, "inv02")]
        round_ = asyncio.create_task(sync.run_once())
        await asyncio.wait_for(reached.wait(), 10)
        round_.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await round_
        await sync.release()
    finally:
        await hanging.close()
    for invoice in invoices:
        (row,) = await store.get_outbox(invoice.id)
        assert (row.next_attempt_at, row.done_at) == (clock.now(), None)
    async with contextlib.AsyncExitStack() as stack:
        api = StripeApi("sk_test_tollway", api_base=fake_stripe.origin)
        stack.push_async_callback(api.close)
        restarted = StripeSync(store=store, customers=Customers(ACME), api=api, clock=clock)
        assert await restarted.run_once() == 2
