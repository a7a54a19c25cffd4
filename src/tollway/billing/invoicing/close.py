"""PeriodCloser: creates the invoices that are due, each exactly once.

Per subscription: an OPENING invoice at `active_from` when it has in-advance or one-time fees for its first
period, and one CLOSING invoice per billing period once the period has ended plus the grace period (the
last period ends at `active_to` for a cancelled or changed subscription: its final invoice, with the
credit for unused in-advance time). A closing invoice also carries adjustment lines for late usage: each
issued closing invoice of the customer whose period ended within the lookback is re-rated, and the
difference with what was invoiced for that period so far becomes a dated line.

Exactly once: workers claim customers (billing claims with a lease; SKIP LOCKED on PostgreSQL) so two
workers do not compute the same customer's invoices at once, and each invoice is stored in one transaction
under its unique billing key ("{subscription}:open", "{subscription}:{period start UTC micros}"), which is
the final guard: a second creation stores nothing. A crash before the commit leaves nothing behind; the
next run (after the claim's lease) does the work again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from tollway.billing.credits.ports import CreditStore
from tollway.billing.customers import Customer
from tollway.billing.features import Feature
from tollway.billing.invoicing.credit_burndown import Application, apply_credits
from tollway.billing.invoicing.lifecycle import closing_key, opening_key
from tollway.billing.invoicing.lines import adjustment_line, advance_invoiced, invoice_total_minor, invoiced_for_period
from tollway.billing.invoicing.model import Invoice, InvoiceLine
from tollway.billing.invoicing.phases import billing_period, service_window
from tollway.billing.invoicing.ports import NOTIFY_CREATED, STRIPE_SYNC, InvoiceStore, IssueRequest
from tollway.billing.invoicing.rating import rate_closing_invoice, rate_opening_invoice, rerate_period
from tollway.billing.invoicing.usage import UsageReader
from tollway.billing.periods import parse_cadence, periods_between
from tollway.billing.plans import Plan
from tollway.billing.ports import CatalogStore
from tollway.billing.subscriptions import Subscription
from tollway.clock import Clock
from tollway.errors import ConflictError
from tollway.ids import new_id
from tollway.metering.events import to_micros

log = logging.getLogger("tollway.billing.close")

CLAIM_PREFIX = "customer:"
CREDIT_ATTEMPTS = 3  # an invoice recomputed when a grant it used moved meanwhile
BILLED = ("issued", "paid", "uncollectible")  # statuses of invoices that count as invoiced
EPOCH = datetime.fromtimestamp(0, UTC)
# An opening invoice without lines does not exist: the sentinel `_create` returns for it.
NOTHING_DUE = Invoice("", "", "", "draft", EPOCH, EPOCH, (), 0)


@dataclass(frozen=True)
class CloseSettings:
    grace: timedelta = timedelta(hours=1)
    auto_issue: bool = True
    due: timedelta = timedelta(days=30)
    lookback: timedelta = timedelta(days=90)
    stripe: bool = False  # issuing enqueues a Stripe sync
    notify: bool = False  # issuing enqueues the invoice.created notification (same transaction)
    lease_s: float = 300.0  # how long a customer claim holds if its worker dies
    batch: int = 200  # customers claimed at a time
    concurrency: int = 8  # customers of a batch invoiced at once (their database calls overlap)


@dataclass(frozen=True)
class DueInvoice:
    """An invoice that should exist: its billing key and what it covers."""

    key: str
    subscription: Subscription
    opening: bool
    period_start: datetime
    period_end: datetime


@dataclass
class CloseReport:
    created: list[Invoice] = field(default_factory=list)
    skipped: int = 0  # due keys another worker holds or already invoiced
    failed: int = 0
    unfinished: set[str] = field(default_factory=set)  # customers with due invoices this round did not make
    expired: int = 0  # credit grants expired this round


def due_invoices(subscription: Subscription, now: datetime, grace: timedelta) -> list[DueInvoice]:
    """Every invoice the subscription should have by `now`, in order (opening first; the opening one may turn
    out to have no lines, then it does not exist)."""
    if subscription.active_to is not None and subscription.active_to <= subscription.active_from:
        return []
    if now < subscription.active_from:
        return []
    due = [
        DueInvoice(
            opening_key(subscription.id),
            subscription,
            True,
            *service_window(subscription, *billing_period(subscription, subscription.active_from)),
        )
    ]
    closed_until = now - grace
    end = closed_until if subscription.active_to is None else min(closed_until, subscription.active_to)
    cadence = parse_cadence(subscription.billing_cadence)
    for period in periods_between(subscription.billing_anchor, cadence, subscription.active_from, end):
        start, stop = service_window(subscription, *period)
        if start < stop and stop + grace <= now:
            due.append(DueInvoice(closing_key(subscription.id, to_micros(start)), subscription, False, start, stop))
    return due


class PeriodCloser:
    def __init__(
        self,
        *,
        store: InvoiceStore,
        catalog: CatalogStore,
        reader: UsageReader,
        clock: Clock,
        settings: CloseSettings | None = None,
        owner: str | None = None,
        credits: CreditStore | None = None,
    ) -> None:
        self._store = store
        self._credits = credits
        self._catalog = catalog
        self._reader = reader
        self._clock = clock
        self._settings = settings or CloseSettings()
        self._owner = owner or f"closer-{os.getpid()}-{os.urandom(4).hex()}"

    @property
    def owner(self) -> str:
        return self._owner

    async def release(self) -> None:
        """Hand back every claim this closer holds, wherever a cancelled round stopped (even between a claim's
        commit and its return)."""
        await self._store.release_claims_of(self._owner)

    async def run_once(self) -> CloseReport:
        """Create every invoice due now that does not exist yet."""
        now = self._clock.now()
        report = CloseReport()
        by_customer: dict[str, list[DueInvoice]] = {}
        for subscription in await self._catalog.list_subscriptions():
            for due in due_invoices(subscription, now, self._settings.grace):
                by_customer.setdefault(subscription.customer_id, []).append(due)
        if not by_customer:
            await self._expire_credits(now, report)
            return report
        existing = await self._store.existing_billing_keys([d.key for dues in by_customer.values() for d in dues])
        pending = {
            customer_id: [d for d in dues if d.key not in existing]
            for customer_id, dues in by_customer.items()
            if any(d.key not in existing for d in dues)
        }
        if not pending:
            await self._expire_credits(now, report)
            return report
        context = _Context(self._catalog)
        known = {c.id: c for c in await self._catalog.list_customers(include_deleted=True)}
        customers = sorted(pending)
        limit = asyncio.Semaphore(max(1, self._settings.concurrency))

        async def close(customer_id: str) -> None:
            async with limit:
                await self._close_customer(
                    known.get(customer_id), customer_id, pending[customer_id], now, context, report
                )

        for start in range(0, len(customers), self._settings.batch):
            batch = customers[start : start + self._settings.batch]
            claims = await self._store.claim_billing_keys(
                [CLAIM_PREFIX + c for c in batch], owner=self._owner, now=now, lease_s=self._settings.lease_s
            )
            claimed = {key.removeprefix(CLAIM_PREFIX) for key in claims}
            report.skipped += sum(len(pending[c]) for c in batch if c not in claimed)
            report.unfinished.update(c for c in batch if c not in claimed)
            try:
                await asyncio.gather(*(close(c) for c in batch if c in claimed))
            finally:
                await self._store.release_billing_claims(claims, owner=self._owner)
        await self._expire_credits(now, report)
        return report

    async def _expire_credits(self, now: datetime, report: CloseReport) -> None:
        """Credit grants whose expiry is a grace period past: what is left expires (a ledger row). By then the
        invoices of the periods ending by their expiry were made this round (customers whose invoices were not
        are left to the next round)."""
        if self._credits is None:
            return
        for grant in await self._credits.expiring(now - self._settings.grace):
            if grant.customer_id in report.unfinished:
                continue
            try:
                await self._credits.end(grant.id, "expired", at=now)
                report.expired += 1
            except Exception:
                log.exception("credit grant %s not expired", grant.id)

    async def _close_customer(
        self,
        customer: Customer | None,
        customer_id: str,
        dues: list[DueInvoice],
        now: datetime,
        context: _Context,
        report: CloseReport,
    ) -> None:
        if customer is None:
            log.error("invoices of customer %s not created: customer not found", customer_id)
            report.failed += len(dues)
            report.unfinished.add(customer_id)
            return
        dues = sorted(dues, key=lambda d: (d.period_end, not d.opening, d.period_start))
        try:
            history = await self._store.list_invoices(customer_id=customer.id)  # grows as invoices are created
        except Exception:
            log.exception("invoices of customer %s not created", customer.key)
            report.failed += len(dues)
            report.unfinished.add(customer_id)
            return
        for due in dues:
            try:
                invoice = await self._create(customer, due, now, context, history)
            except Exception:
                # one customer's bad data must not stop the others; the next run retries
                log.exception("invoice %s not created", due.key)
                report.failed += 1
                report.unfinished.add(customer_id)
                return
            if invoice is None:
                report.skipped += 1  # another worker (or an earlier run) created it
            elif invoice is not NOTHING_DUE:
                report.created.append(invoice)
                history.append(invoice)

    async def _create(
        self, customer: Customer, due: DueInvoice, now: datetime, context: _Context, history: list[Invoice]
    ) -> Invoice | None:
        subscription = due.subscription
        plan = await context.plan(subscription.plan_id)
        features = await context.features()
        if due.opening:
            lines = await rate_opening_invoice(subscription=subscription, plan=plan)
            if not lines:
                return NOTHING_DUE
        else:
            earlier = [
                line
                for invoice in history
                if invoice.subscription_id == subscription.id and invoice.status != "void"
                for line in invoice.lines
            ]
            period = billing_period(subscription, due.period_start)
            lines = await rate_closing_invoice(
                subscription=subscription,
                plan=plan,
                customer=customer,
                period_start=due.period_start,
                period_end=due.period_end,
                usage_until=None,
                reader=self._reader,
                features=features,
                advance_charged=advance_invoiced(earlier, *period),
            )
            lines.extend(await self._adjustments(customer, now, context, features, history))
        invoice_id = new_id(now)
        lines = [replace(line, id=line.id or f"{invoice_id}-{n}") for n, line in enumerate(lines, start=1)]
        issue = None
        if self._settings.auto_issue:
            enqueue = ((STRIPE_SYNC,) if self._settings.stripe else ()) + (
                (NOTIFY_CREATED,) if self._settings.notify else ()
            )
            issue = IssueRequest(issued_at=now, due_at=now + self._settings.due, enqueue=enqueue)
        created: Invoice | None = None
        for attempt in range(1, CREDIT_ATTEMPTS + 1):
            paid = Application((), ())
            if self._credits is not None:
                paid = apply_credits(
                    lines,
                    await self._credits.balances(customer.id),
                    invoice_id=invoice_id,
                    currency=subscription.currency,
                    at=now,
                    period_start=due.period_start,
                    period_end=due.period_end,
                )
            all_lines = [*lines, *paid.lines]
            invoice = Invoice(
                id=invoice_id,
                customer_id=customer.id,
                currency=subscription.currency,
                status="draft",
                period_start=due.period_start,
                period_end=due.period_end,
                lines=tuple(all_lines),
                total_minor=invoice_total_minor(all_lines),
                subscription_id=subscription.id,
                billing_key=due.key,
                metadata={"kind": "opening" if due.opening else "closing"},
            )
            try:
                created = await self._store.create_invoice(invoice, issue=issue, ledger=paid.transactions)
                break
            except ConflictError as exc:
                # a grant's balance moved (voided, expired, another invoice) between the read and the write
                if exc.field != "credits" or attempt == CREDIT_ATTEMPTS:
                    raise
        if created is not None:
            log.info("invoice %s created for %s (%s)", created.id, customer.key, due.key)
        return created

    async def _adjustments(
        self,
        customer: Customer,
        now: datetime,
        context: _Context,
        features: Mapping[str, Feature],
        history: list[Invoice],
    ) -> list[InvoiceLine]:
        """Late usage: each issued closing invoice of the customer whose period ended within the lookback,
        re-rated, minus what was invoiced for its period so far (its period lines + earlier adjustments)."""
        since = now - self._settings.lookback
        invoices = [invoice for invoice in history if invoice.period_end >= since]
        counted = [invoice for invoice in history if invoice.status != "void"]
        lines: list[InvoiceLine] = []
        for invoice in invoices:
            if invoice.status not in BILLED or invoice.metadata.get("kind") != "closing" or not invoice.subscription_id:
                continue
            subscription = await context.subscription(invoice.subscription_id)
            if subscription is None:
                continue
            plan = await context.plan(subscription.plan_id)
            rated = await rerate_period(
                subscription=subscription,
                plan=plan,
                customer=customer,
                period_start=invoice.period_start,
                period_end=invoice.period_end,
                reader=self._reader,
                features=features,
            )
            made = [line for other in counted for line in other.lines if line.adjusts_invoice_id == invoice.id]
            line = adjustment_line(
                rated=rated,
                invoiced_minor=invoiced_for_period(invoice.lines, made),
                currency=invoice.currency,
                period_start=invoice.period_start,
                period_end=invoice.period_end,
                adjusts_invoice_id=invoice.id,
                adjusts_invoice_number=invoice.number,
                subscription_id=invoice.subscription_id,
            )
            if line is not None:
                lines.append(line)
        return lines


class _Context:
    """Catalog reads cached for one run."""

    def __init__(self, catalog: CatalogStore) -> None:
        self._catalog = catalog
        self._plans: dict[str, Plan] = {}
        self._features: dict[str, Feature] | None = None
        self._subscriptions: dict[str, Subscription | None] = {}

    async def plan(self, plan_id: str) -> Plan:
        plan = self._plans.get(plan_id)
        if plan is None:
            found = await self._catalog.get_plan(plan_id)
            if found is None:
                raise LookupError(f"plan {plan_id} not found")
            plan = self._plans[plan_id] = found
        return plan

    async def features(self) -> dict[str, Feature]:
        if self._features is None:
            found = await self._catalog.list_features(include_archived=True)
            # archived versions first, so the live feature of a key wins
            self._features = {f.key: f for f in sorted(found, key=lambda f: not f.archived)}
        return self._features

    async def subscription(self, subscription_id: str) -> Subscription | None:
        if subscription_id not in self._subscriptions:
            self._subscriptions[subscription_id] = await self._catalog.get_subscription(subscription_id)
        return self._subscriptions[subscription_id]
