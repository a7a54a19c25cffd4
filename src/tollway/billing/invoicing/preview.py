"""Invoice preview: the closing invoice of the period holding a moment, computed live from usage so far."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from tollway.billing.catalog.customer_contexts import CustomerContexts
from tollway.billing.credits.ports import CreditStore
from tollway.billing.invoicing.credit_burndown import apply_credits
from tollway.billing.invoicing.lines import invoice_total_minor
from tollway.billing.invoicing.model import Invoice
from tollway.billing.invoicing.phases import billing_period
from tollway.billing.invoicing.rating import rate_closing
from tollway.billing.invoicing.usage import UsageReader
from tollway.billing.subscriptions import active_at
from tollway.clock import Clock
from tollway.errors import NotFoundError


class InvoicePreview:
    def __init__(
        self, contexts: CustomerContexts, reader: UsageReader, clock: Clock, *, credits: CreditStore | None = None
    ) -> None:
        self._credits = credits
        self._contexts = contexts
        self._reader = reader
        self._clock = clock

    async def preview(self, customer: str, at: datetime | None = None) -> Invoice:
        """What the invoice closing the period that holds `at` (default now) would be if the period closed
        with the usage so far: usage up to min(at, period end), the period's fees and the next period's
        in-advance fees, and the credits that would pay it ("credits applied" lines). A draft without id or
        number. NotFoundError when no subscription is active at `at`."""
        moment = at or self._clock.now()
        context = await self._contexts.customer_context(customer, live=False)
        found = context.customer
        subscription = active_at(context.subscriptions, moment)
        if subscription is None:
            raise NotFoundError(
                f"customer {found.key!r} has no subscription active at {moment.isoformat()}", field="customer"
            )
        plan = context.plans[subscription.plan_id]
        features = context.features_by_key()
        period = billing_period(subscription, moment)
        rated = await rate_closing(
            subscription=subscription,
            plan=plan,
            customer=found,
            period_start=period[0],
            period_end=period[1],
            usage_until=moment,
            reader=self._reader,
            features=features,
        )
        if rated is None:  # a subscription active at `moment` has a service window holding it
            raise NotFoundError(
                f"customer {found.key!r} has nothing to invoice at {moment.isoformat()}", field="customer"
            )
        start, end = rated.window
        lines = [replace(line, id=f"preview-{n}") for n, line in enumerate(rated.lines, start=1)]
        if self._credits is not None:  # what the customer's credits would pay of it
            paid = apply_credits(
                lines,
                await self._credits.balances(found.id),
                invoice_id="preview",
                currency=subscription.currency,
                at=moment,
                period_start=start,
                period_end=end,
            )
            lines.extend(paid.lines)
        return Invoice(
            id="",
            customer_id=found.id,
            currency=subscription.currency,
            status="draft",
            period_start=start,
            period_end=end,
            lines=tuple(lines),
            total_minor=invoice_total_minor(lines),
            subscription_id=subscription.id,
            created_at=self._clock.now(),
        )
