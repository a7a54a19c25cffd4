"""Top-ups: a grant funded by invoice gets an invoice for its price (its amount unless a price is given: "pay
$18 for $20 of credits"), created and issued at once (synced to Stripe like any invoice: the outbox rows are
written in the issuing transaction). The grant becomes active when that invoice is paid (`settle`: the billing
worker's round, and right after a mark-paid), or at once when the customer receives credits before payment
(customer metadata `credits_before_payment: "true"`).

Exactly once: the invoice's billing key is `topup:<grant id>` (a second creation stores nothing), and the grant
is activated with its single `funded` row (a unique key in the database)."""

from __future__ import annotations

from datetime import timedelta

from tollway.billing.credits.model import CreditGrant
from tollway.billing.credits.ports import CreditStore
from tollway.billing.invoicing.model import Invoice, InvoiceLine
from tollway.billing.invoicing.ports import InvoiceStore, IssueRequest
from tollway.clock import Clock
from tollway.money import format_money, from_minor_units

TOPUP_RATE_CARD = "credits-topup"
BEFORE_PAYMENT = "credits_before_payment"  # customer metadata: "true" -> bought credits are active at once


def topup_key(grant_id: str) -> str:
    return f"topup:{grant_id}"


class TopUps:
    def __init__(
        self,
        credits: CreditStore,
        invoices: InvoiceStore,
        clock: Clock,
        *,
        due: timedelta = timedelta(days=30),
        enqueue: tuple[str, ...] = (),
    ) -> None:
        self._credits = credits
        self._invoices = invoices
        self._clock = clock
        self._due = due
        self._enqueue = enqueue  # Stripe sync / invoice.created notification, as for every issued invoice

    async def invoice(self, grant: CreditGrant) -> Invoice | None:
        """Create and issue the grant's top-up invoice (None when it exists already)."""
        assert grant.invoice_id is not None
        now = self._clock.now()
        price = grant.amount_minor if grant.price_minor is None else grant.price_minor
        worth = format_money(grant.amount_minor, grant.currency)
        line = InvoiceLine(
            kind="flat",
            rate_card_key=TOPUP_RATE_CARD,
            description=f"Credits top-up: {grant.name} ({worth} of credits)",
            period_start=now,
            period_end=now,
            amount=from_minor_units(price, grant.currency),
            amount_minor=price,
            id=f"{grant.invoice_id}-1",
            metadata={"rating": "topup", "grant_id": grant.id},
        )
        invoice = Invoice(
            id=grant.invoice_id,
            customer_id=grant.customer_id,
            currency=grant.currency,
            status="draft",
            period_start=now,
            period_end=now,
            lines=(line,),
            total_minor=price,
            billing_key=topup_key(grant.id),
            metadata={"kind": "topup", "grant_id": grant.id},
        )
        issue = IssueRequest(issued_at=now, due_at=now + self._due, enqueue=self._enqueue)
        return await self._invoices.create_invoice(invoice, issue=issue)

    async def settle(self) -> list[CreditGrant]:
        """Pending grants whose top-up invoice is paid (or costs nothing) become active."""
        activated = []
        for grant in await self._credits.list_pending():
            if grant.invoice_id is None:
                continue
            invoice = await self._invoices.get_invoice(grant.invoice_id)
            if invoice is not None and (invoice.status == "paid" or invoice.total_minor == 0):
                activated.append(await self._credits.activate(grant.id, at=self._clock.now()))
        return activated
