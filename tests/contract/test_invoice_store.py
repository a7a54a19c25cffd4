"""One contract suite for the invoice store: the memory fake, SQLite and PostgreSQL follow the same rules —
one invoice per billing key even when two creators race, gap-free numbers under concurrent issues,
lifecycle transitions, outbox claims and webhook dedup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.databases import BACKENDS, database_url
from tollway.adapters.memory.invoices import MemoryInvoiceStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.invoices import SqlInvoiceStore
from tollway.adapters.sql.migrate import upgrade
from tollway.billing.invoicing.model import Invoice, InvoiceLine, UsageSlice
from tollway.billing.invoicing.ports import STRIPE_SYNC, STRIPE_VOID, InvoiceStore, IssueRequest
from tollway.billing.pricing.model import TierCharge, UsageCharge
from tollway.clock import FrozenClock
from tollway.errors import ConflictError, NotFoundError, ValidationError

NOW = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
P_START = datetime(2026, 10, 1, tzinfo=UTC)
P_END = datetime(2026, 11, 1, tzinfo=UTC)

StoreFactory = Callable[[], InvoiceStore]


@pytest.fixture(params=BACKENDS)
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A factory of store handles over ONE database (SQL: each handle has its own engine and connections,
    as two worker processes would)."""
    clock = FrozenClock(NOW)
    if request.param == "memory":
        memory = MemoryInvoiceStore(clock)
        yield lambda: memory
        return
    url = database_url(request, tmp_path, "invoices.db")
    engines = [create_sql_engine(url)]
    await asyncio.to_thread(upgrade, engines[0])
    handles: list[InvoiceStore] = []

    def make() -> InvoiceStore:
        if handles:
            engines.append(create_sql_engine(url))
        handles.append(SqlInvoiceStore(engines[-1], clock))
        return handles[-1]

    yield make
    for engine in engines:
        engine.dispose()


def usage_line() -> InvoiceLine:
    charge = UsageCharge(
        quantity=Decimal("1500000"),
        free_quantity=Decimal("100000"),
        billable_quantity=Decimal("1400000"),
        priced_amount=Decimal("13.2"),
        discount_amount=Decimal("1.32"),
        maximum_cut=Decimal(0),
        minimum_top_up=Decimal(0),
        amount=Decimal("11.88"),
        tiers=(
            TierCharge(1, Decimal("1000000"), Decimal("1000000"), Decimal("0.00001"), Decimal(0), Decimal("10")),
            TierCharge(2, None, Decimal("400000"), Decimal("0.000008"), Decimal(0), Decimal("3.2")),
        ),
    )
    return InvoiceLine(
        kind="usage",
        rate_card_key="output-tokens",
        description="1,500,000 output tokens",
        period_start=P_START,
        period_end=P_END,
        amount=Decimal("11.88"),
        amount_minor=1188,
        feature_key="output-tokens",
        subscription_id="sub1",
        charge=charge,
        slices=(
            UsageSlice({"model": "gpt-4o", "type": "output"}, Decimal("1000000")),
            UsageSlice({"model": "gpt-4o-mini", "type": "output"}, Decimal("500000")),
        ),
        metadata={"note": "x"},
    )


def flat_line() -> InvoiceLine:
    return InvoiceLine(
        kind="flat",
        rate_card_key="platform-fee",
        description="Platform fee",
        period_start=P_END,
        period_end=datetime(2026, 12, 1, tzinfo=UTC),
        amount=Decimal("24.5000000001"),
        amount_minor=2450,
        proration=Decimal("0.5000000000002"),
    )


def draft(key: str, *, customer: str = "cus1", invoice_id: str | None = None) -> Invoice:
    lines = (usage_line(), flat_line())
    return Invoice(
        id=invoice_id or f"inv-{key}",
        customer_id=customer,
        currency="USD",
        status="draft",
        period_start=P_START,
        period_end=P_END,
        lines=lines,
        total_minor=1188 + 2450,
        subscription_id="sub1",
        billing_key=key,
        metadata={"kind": "closing"},
    )


def issue_at(at: datetime = NOW, *enqueue: str) -> IssueRequest:
    return IssueRequest(issued_at=at, due_at=at + timedelta(days=30), enqueue=tuple(enqueue))


async def test_round_trip_keeps_every_value(stores: StoreFactory) -> None:
    store = stores()
    created = await store.create_invoice(draft("sub1:1"))
    assert created is not None
    got = await store.get_invoice(created.id)
    assert got == created
    assert got is not None
    assert got.lines[0].charge == usage_line().charge
    assert got.lines[0].slices == usage_line().slices
    assert got.lines[1].amount == Decimal("24.5000000001")
    assert got.lines[1].proration == Decimal("0.5000000000002")
    assert [line.id for line in got.lines] == [f"{created.id}-1", f"{created.id}-2"]
    assert got.created_at == NOW
    assert got.number is None
    assert got.status == "draft"
    assert await store.get_invoice_by_key("sub1:1") == created
    assert await store.get_invoice("nope") is None


async def test_second_create_with_the_same_key_stores_nothing(stores: StoreFactory) -> None:
    store = stores()
    assert await store.create_invoice(draft("sub1:1")) is not None
    other = replace(draft("sub1:1", invoice_id="inv-other"), lines=(), total_minor=0)
    assert await store.create_invoice(other, issue=issue_at(NOW, STRIPE_SYNC)) is None
    assert await store.get_invoice("inv-other") is None
    assert [i.id for i in await store.list_invoices()] == ["inv-sub1:1"]
    assert await store.get_outbox("inv-sub1:1") == []
    assert await store.existing_billing_keys(["sub1:1", "sub1:2"]) == {"sub1:1"}


async def test_racing_creators_store_exactly_one_invoice_per_key(stores: StoreFactory) -> None:
    a, b = stores(), stores()
    keys = [f"sub{n}:open" for n in range(8)]
    results = await asyncio.gather(
        *(a.create_invoice(draft(key, invoice_id=f"a-{key}"), issue=issue_at()) for key in keys),
        *(b.create_invoice(draft(key, invoice_id=f"b-{key}"), issue=issue_at()) for key in keys),
    )
    won = [r for r in results if r is not None]
    assert len(won) == 8
    stored = await a.list_invoices()
    assert sorted(i.billing_key or "" for i in stored) == sorted(keys)
    # the losers consumed no number: 8 invoices, numbers 1..8
    assert sorted(i.number or "" for i in stored) == [f"TW-2026-{n:06d}" for n in range(1, 9)]


async def test_rejects_invalid_invoices(stores: StoreFactory) -> None:
    store = stores()
    with pytest.raises(ValidationError) as excinfo:
        await store.create_invoice(replace(draft("k"), total_minor=1))
    assert excinfo.value.field == "total_minor"
    with pytest.raises(ValidationError):
        await store.create_invoice(replace(draft("k"), billing_key=None))
    with pytest.raises(ValidationError):
        await store.create_invoice(replace(draft("k"), status="issued"))
    assert await store.list_invoices() == []


async def test_concurrent_issues_number_without_gaps(stores: StoreFactory) -> None:
    a, b = stores(), stores()
    ids = []
    for n in range(24):
        created = await a.create_invoice(draft(f"sub1:{n}"))
        assert created is not None
        ids.append(created.id)
    issued = await asyncio.gather(
        *((a if n % 2 else b).issue_invoice(invoice_id, issue_at()) for n, invoice_id in enumerate(ids))
    )
    assert sorted(i.number or "" for i in issued) == [f"TW-2026-{n:06d}" for n in range(1, 25)]
    stored = {i.id: i.number for i in await a.list_invoices(status="issued")}
    assert stored == {i.id: i.number for i in issued}
    with pytest.raises(ConflictError):
        await a.issue_invoice(ids[0], issue_at())
    with pytest.raises(NotFoundError):
        await a.issue_invoice("missing", issue_at())
    # a new year starts a new series at 1
    created = await a.create_invoice(draft("sub1:next-year"))
    assert created is not None
    next_year = await a.issue_invoice(created.id, issue_at(datetime(2027, 1, 1, tzinfo=UTC)))
    assert next_year.number == "TW-2027-000001"


async def test_each_issue_takes_the_next_number_of_its_year(stores: StoreFactory) -> None:
    # One issue after another, each number asserted as it is given: 1, 2, 3 ... with no gap and no repeat,
    # whether the invoice is issued as it is created or later, and a voided invoice keeps its number.
    store = stores()
    numbers = []
    for n in range(3):
        created = await store.create_invoice(draft(f"sub1:{n}"), issue=issue_at())
        assert created is not None
        numbers.append(created.number)
    assert numbers == ["TW-2026-000001", "TW-2026-000002", "TW-2026-000003"]
    await store.set_status("inv-sub1:1", "void", at=NOW)
    later = await store.create_invoice(draft("sub1:later"))
    assert later is not None
    assert later.number is None  # a draft has none: numbers are given when issued
    fourth = await store.issue_invoice(later.id, issue_at(NOW + timedelta(days=1)))
    assert fourth.number == "TW-2026-000004"
    other_year = await store.create_invoice(draft("sub1:2027"), issue=issue_at(datetime(2027, 1, 1, tzinfo=UTC)))
    assert other_year is not None
    assert other_year.number == "TW-2027-000001"
    fifth = await store.create_invoice(draft("sub1:back-in-2026"), issue=issue_at(datetime(2026, 12, 31, tzinfo=UTC)))
    assert fifth is not None
    assert fifth.number == "TW-2026-000005"
    # a second handle on the same database continues the same series
    sixth = await stores().create_invoice(draft("sub1:other-handle"), issue=issue_at())
    assert sixth is not None
    assert sixth.number == "TW-2026-000006"
    stored = {i.id: i.number for i in await store.list_invoices()}
    assert stored == {
        "inv-sub1:0": "TW-2026-000001",
        "inv-sub1:1": "TW-2026-000002",
        "inv-sub1:2": "TW-2026-000003",
        "inv-sub1:later": "TW-2026-000004",
        "inv-sub1:2027": "TW-2027-000001",
        "inv-sub1:back-in-2026": "TW-2026-000005",
        "inv-sub1:other-handle": "TW-2026-000006",
    }


async def test_issue_sets_dates_and_enqueues_in_the_same_transaction(stores: StoreFactory) -> None:
    store = stores()
    created = await store.create_invoice(draft("sub1:1"), issue=issue_at(NOW, STRIPE_SYNC))
    assert created is not None
    assert created.status == "issued"
    assert created.number == "TW-2026-000001"
    got = await store.get_invoice(created.id)
    assert got == created
    assert got is not None
    assert got.issued_at == NOW
    assert got.due_at == NOW + timedelta(days=30)
    outbox = await store.get_outbox(created.id)
    assert [(o.kind, o.attempts, o.done_at) for o in outbox] == [(STRIPE_SYNC, 0, None)]


async def test_lifecycle_transitions(stores: StoreFactory) -> None:
    store = stores()
    later = NOW + timedelta(days=3)
    created = await store.create_invoice(draft("sub1:1"))
    assert created is not None
    for illegal in ("paid", "uncollectible"):
        with pytest.raises(ConflictError) as excinfo:
            await store.set_status(created.id, illegal, at=later)
        assert excinfo.value.field == "status"
    with pytest.raises(ValidationError):
        await store.set_status(created.id, "issued", at=later)
    await store.issue_invoice(created.id, issue_at())
    uncollectible = await store.set_status(created.id, "uncollectible", at=later)
    assert uncollectible.uncollectible_at == later
    paid = await store.set_status(created.id, "paid", at=later + timedelta(days=1))
    assert (paid.status, paid.paid_at) == ("paid", later + timedelta(days=1))
    assert await store.set_status(created.id, "paid", at=later + timedelta(days=9)) == paid  # replay: no-op
    with pytest.raises(ConflictError):
        await store.set_status(created.id, "void", at=later)
    assert await store.get_invoice(created.id) == paid
    with pytest.raises(NotFoundError):
        await store.set_status("missing", "void", at=later)

    other = await store.create_invoice(draft("sub1:2"), issue=issue_at())
    assert other is not None
    voided = await store.set_status(other.id, "void", at=later, enqueue=[STRIPE_VOID])
    assert (voided.status, voided.voided_at, voided.number) == ("void", later, other.number)
    assert [o.kind for o in await store.get_outbox(other.id)] == [STRIPE_VOID]
    for illegal in ("paid", "uncollectible"):
        with pytest.raises(ConflictError):
            await store.set_status(other.id, illegal, at=later)  # type: ignore[arg-type]
    discarded = await store.create_invoice(draft("sub1:3"))
    assert discarded is not None
    assert (await store.set_status(discarded.id, "void", at=later)).number is None


async def test_record_stripe_ids(stores: StoreFactory) -> None:
    store = stores()
    created = await store.create_invoice(draft("sub1:1"), issue=issue_at())
    assert created is not None
    first_line = created.lines[0].id
    changed = await store.record_stripe_ids(created.id, line_item_ids={first_line: "ii_1"})
    assert [line.stripe_invoice_item_id for line in changed.lines] == ["ii_1", None]
    changed = await store.record_stripe_ids(created.id, stripe_invoice_id="in_1", stripe_status="draft")
    changed = await store.record_stripe_ids(created.id, stripe_status="open")
    assert (changed.stripe_invoice_id, changed.stripe_status) == ("in_1", "open")
    assert await store.get_invoice(created.id) == changed
    assert changed.lines[0].stripe_invoice_item_id == "ii_1"
    assert (changed.number, changed.total_minor, changed.status) == (created.number, created.total_minor, "issued")
    with pytest.raises(NotFoundError):
        await store.record_stripe_ids(created.id, line_item_ids={"nope": "ii_2"})
    with pytest.raises(NotFoundError):
        await store.record_stripe_ids("missing", stripe_invoice_id="in_2")


async def test_outbox_claims_are_disjoint_and_leases_expire(stores: StoreFactory) -> None:
    a, b = stores(), stores()
    ids = []
    for n in range(6):
        created = await a.create_invoice(draft(f"sub1:{n}"), issue=issue_at(NOW + timedelta(seconds=n), STRIPE_SYNC))
        assert created is not None
        ids.append(created.id)
    assert await a.enqueue(ids[0], STRIPE_SYNC, at=NOW) is False  # one row per invoice and kind
    with pytest.raises(NotFoundError):
        await a.enqueue("missing", STRIPE_SYNC, at=NOW)
    at = NOW + timedelta(minutes=1)
    first, second = await asyncio.gather(
        a.claim_outbox(now=at, limit=4, lease_s=60), b.claim_outbox(now=at, limit=4, lease_s=60)
    )
    claimed = [item.invoice_id for item in [*first, *second]]
    assert sorted(claimed) == sorted(ids)  # all six, none twice
    assert all(item.attempts == 1 for item in [*first, *second])
    assert await a.claim_outbox(now=at + timedelta(seconds=30)) == []  # leased
    done, failed, *crashed = [*first, *second]
    await a.complete_outbox(done.id, at=at)
    await a.fail_outbox(failed.id, error="stripe down", next_attempt_at=at + timedelta(seconds=10))
    again = await b.claim_outbox(now=at + timedelta(seconds=10), limit=10)
    assert [(i.id, i.attempts, i.last_error) for i in again] == [(failed.id, 2, "stripe down")]
    after_lease = await b.claim_outbox(now=at + timedelta(seconds=61), limit=10)
    assert sorted(i.id for i in after_lease) == sorted(i.id for i in crashed)  # their claimer never came back
    assert all(i.attempts == 2 for i in after_lease)
    assert (await a.get_outbox(done.invoice_id))[0].done_at == at
    with pytest.raises(NotFoundError):
        await a.complete_outbox("missing", at=at)
    assert await a.claim_outbox(now=at + timedelta(days=1), kinds=[STRIPE_VOID]) == []


async def test_billing_claims(stores: StoreFactory) -> None:
    a, b = stores(), stores()
    keys = [f"sub{n}:1" for n in range(10)]
    got_a, got_b = await asyncio.gather(
        a.claim_billing_keys(keys, owner="wa", now=NOW, lease_s=60),
        b.claim_billing_keys(keys, owner="wb", now=NOW, lease_s=60),
    )
    assert sorted(got_a + got_b) == sorted(keys)  # disjoint, all taken
    assert set(got_a).isdisjoint(got_b)
    mine = got_a or got_b
    owner, other_owner, other = ("wa", "wb", b) if got_a else ("wb", "wa", a)
    assert await other.claim_billing_keys(mine, owner=other_owner, now=NOW + timedelta(seconds=59), lease_s=60) == []
    assert await a.claim_billing_keys(mine[:1], owner=owner, now=NOW, lease_s=60) == mine[:1]  # owner renews
    # creating the invoice ends the claim, and an invoiced key cannot be claimed again
    created = await a.create_invoice(draft(mine[0]))
    assert created is not None
    assert await other.claim_billing_keys(mine[:1], owner=other_owner, now=NOW + timedelta(hours=1), lease_s=60) == []
    # released claims are free at once; expired ones after the lease
    await a.release_billing_claims(mine[1:2], owner=owner)
    assert await other.claim_billing_keys(mine[1:2], owner=other_owner, now=NOW, lease_s=60) == mine[1:2]
    rest = mine[2:]
    assert await other.claim_billing_keys(rest, owner=other_owner, now=NOW + timedelta(seconds=61), lease_s=60) == rest


async def test_list_filters(stores: StoreFactory) -> None:
    store = stores()
    first = await store.create_invoice(draft("s:1", customer="c1"), issue=issue_at())
    second = await store.create_invoice(draft("s:2", customer="c2"))
    third = await store.create_invoice(
        replace(draft("s:3", customer="c1"), subscription_id="sub2", period_end=datetime(2026, 12, 1, tzinfo=UTC))
    )
    assert first is not None
    assert second is not None
    assert third is not None
    assert [i.id for i in await store.list_invoices(customer_id="c1")] == [first.id, third.id]
    assert [i.id for i in await store.list_invoices(status="draft")] == [second.id, third.id]
    assert [i.id for i in await store.list_invoices(subscription_id="sub2")] == [third.id]
    assert [i.id for i in await store.list_invoices(period_end_from=datetime(2026, 11, 2, tzinfo=UTC))] == [third.id]


async def test_webhook_event_ids_are_recorded_once(stores: StoreFactory) -> None:
    a, b = stores(), stores()
    results = await asyncio.gather(
        a.record_webhook_event("evt_1", received_at=NOW), b.record_webhook_event("evt_1", received_at=NOW)
    )
    assert sorted(results) == [False, True]
    assert await a.record_webhook_event("evt_2", received_at=NOW) is True
    assert await b.record_webhook_event("evt_2", received_at=NOW) is False


async def test_a_clean_stop_hands_back_claims_and_outbox_rows(stores: StoreFactory) -> None:
    a, b = stores(), stores()
    assert await a.claim_billing_keys(["c:1", "c:2"], owner="wa", now=NOW, lease_s=300) == ["c:1", "c:2"]
    assert await b.claim_billing_keys(["c:3"], owner="wb", now=NOW, lease_s=300) == ["c:3"]
    await a.release_claims_of("wa")
    later = NOW + timedelta(seconds=1)  # well inside the lease
    assert await b.claim_billing_keys(["c:1", "c:2", "c:3"], owner="wb2", now=later, lease_s=300) == ["c:1", "c:2"]
    ids = []
    for n in range(3):
        created = await a.create_invoice(draft(f"sub9:{n}"), issue=issue_at(NOW, STRIPE_SYNC))
        assert created is not None
        ids.append(created.id)
    done, unfinished, _still_leased = await a.claim_outbox(now=NOW, limit=3, lease_s=300)
    await a.complete_outbox(done.id, at=NOW)
    await a.release_outbox([done.id, unfinished.id], at=later)
    assert [i.id for i in await b.claim_outbox(now=later, limit=10)] == [unfinished.id]  # the third: still leased
    assert (await a.get_outbox(done.invoice_id))[0].done_at == NOW
