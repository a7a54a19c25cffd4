"""Rating use cases: a subscription's rate cards and usage -> the lines of its invoices. The period closer and
the preview call `rate_closing` / `rate_closing_invoice`, `rate_opening_invoice` and `rerate_period`; closing
and re-rating share one step, `rate_window` (the billing period's service window and its "period" lines), and all
three cut their window alike (`phases.period_window`). The
lines themselves are built pure in `lines.py`; periods, windows and phases are `phases.py`'s.

Rules (see docs/billing.md "Invoices"):
- usage lines count the feature's meter slice over [max(period start, active_from), min(period end, active_to,
  usage_until)); usage is never prorated;
- flat fees are prorated by exact duration when the period is cut short by the subscription's start or end;
  in advance -> the invoice that opens the period (the opening invoice, or the closing invoice of the period
  before); in arrears -> the invoice that closes it; one-time fees (no billing cadence) once: in advance on
  the opening invoice, in arrears on the first closing invoice;
- a subscription that ends inside a period it paid in advance gets the unused part back as a negative line;
- every line rounds once to the currency's minor unit (half away from zero); totals sum rounded lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tollway.billing.customers import Customer
from tollway.billing.features import Feature
from tollway.billing.invoicing.lines import (
    OPENING,
    PERIOD,
    RatedPeriod,
    advance_lines,
    credit_lines,
    period_fee_line,
    usage_line,
)
from tollway.billing.invoicing.model import InvoiceLine
from tollway.billing.invoicing.phases import Window, period_window, rate_cards_at
from tollway.billing.invoicing.usage import NO_USAGE, UsageReader, UsageRequest, read_usages
from tollway.billing.plans import Plan, RateCard
from tollway.billing.subscriptions import Subscription
from tollway.errors import NotFoundError


@dataclass(frozen=True)
class RatedWindow:
    """A billing period's service window rated: `period` the whole anchored period, `window` the part of it
    billed (cut to the subscription's life and to what was asked; never empty), `lines` its lines."""

    period: Window
    window: Window
    lines: tuple[InvoiceLine, ...]


def _feature(features: Mapping[str, Feature], card: RateCard) -> Feature:
    feature = features.get(card.feature_key or "")
    if feature is None:
        raise NotFoundError(f"feature {card.feature_key!r} of rate card {card.key!r} not found", field="feature")
    return feature


async def rate_window(
    *,
    subscription: Subscription,
    plan: Plan,
    customer: Customer,
    period_start: datetime,
    period_end: datetime,
    usage_until: datetime | None,
    reader: UsageReader,
    features: Mapping[str, Feature],
) -> RatedWindow | None:
    """The one rated-window step of closing and re-rating: the billing period holding `period_start`, cut to
    [period_start, period_end) and the subscription's life, with its "period" lines — usage (up to `usage_until`
    when given: a preview) and in-arrears fees (prorated when cut short; one-time in-arrears fees on the first
    period only). None when the window is empty."""
    period, (start, end) = period_window(subscription, period_start, period_end)
    if start >= end:
        return None
    usage_end = end if usage_until is None else min(end, usage_until)
    first = start == subscription.active_from
    reads_usage = bool(customer.subjects) and start < usage_end
    lines: list[InvoiceLine] = []
    cards = rate_cards_at(plan, subscription, start)
    requests = [
        UsageRequest(_feature(features, card), tuple(customer.subjects), start, usage_end)
        for card in cards
        if card.usage is not None and reads_usage
    ]
    usages = iter(await read_usages(reader, requests))  # one read per meter, in the cards' order
    for card in cards:
        if card.usage is not None:
            feature = _feature(features, card)
            lines.append(
                usage_line(
                    card=card,
                    feature=feature,
                    currency=subscription.currency,
                    period_start=start,
                    period_end=end,
                    usage=next(usages) if reads_usage else NO_USAGE,
                    subscription_id=subscription.id,
                )
            )
        elif card.flat is not None and card.flat.payment_term == "in_arrears":
            if card.billing_cadence is None and not first:
                continue
            lines.append(period_fee_line(card, subscription, (start, end), period, rating=PERIOD))
    return RatedWindow(period, (start, end), tuple(lines))


async def rate_closing(
    *,
    subscription: Subscription,
    plan: Plan,
    customer: Customer,
    period_start: datetime,
    period_end: datetime,
    usage_until: datetime | None,
    reader: UsageReader,
    features: Mapping[str, Feature],
    advance_charged: Mapping[str, Decimal] | None = None,
) -> RatedWindow | None:
    """The invoice closing the billing period that holds `period_start` (a whole anchored period or one already
    cut to the subscription; it is cut to [active_from, active_to) here either way), its window and its lines:

    - "period": `rate_window`'s;
    - "credit": when the subscription ends inside this period, the in-advance fees' unused part, negative
      (`credit_lines`; `advance_charged`: what was charged in advance for the period, see `advance_invoiced`);
    - "advance": when the subscription continues past the period, the next period's in-advance fees
      (prorated when a known end cuts the next period short).

    None when the window is empty: no closing invoice."""
    rated = await rate_window(
        subscription=subscription,
        plan=plan,
        customer=customer,
        period_start=period_start,
        period_end=period_end,
        usage_until=usage_until,
        reader=reader,
        features=features,
    )
    if rated is None:
        return None
    period = rated.period
    if subscription.active_to is not None and subscription.active_to < period[1]:  # it ends here
        fees = credit_lines(subscription, plan, period, rated.window, advance_charged)
    else:
        fees = advance_lines(subscription, plan, period)
    return RatedWindow(period, rated.window, (*rated.lines, *fees))


async def rate_closing_invoice(
    *,
    subscription: Subscription,
    plan: Plan,
    customer: Customer,
    period_start: datetime,
    period_end: datetime,
    usage_until: datetime | None,
    reader: UsageReader,
    features: Mapping[str, Feature],
    advance_charged: Mapping[str, Decimal] | None = None,
) -> list[InvoiceLine]:
    """`rate_closing`'s lines (empty: no closing invoice)."""
    rated = await rate_closing(
        subscription=subscription,
        plan=plan,
        customer=customer,
        period_start=period_start,
        period_end=period_end,
        usage_until=usage_until,
        reader=reader,
        features=features,
        advance_charged=advance_charged,
    )
    return [] if rated is None else list(rated.lines)


async def rate_opening_invoice(*, subscription: Subscription, plan: Plan) -> list[InvoiceLine]:
    """The lines of the subscription's opening invoice (at active_from): its in-advance fees for the first
    period, prorated when that period is cut short, and its one-time in-advance fees. Empty: no opening invoice.
    """
    period, (start, end) = period_window(subscription, subscription.active_from)
    if start >= end:
        return []
    return [
        period_fee_line(card, subscription, (start, end), period, rating=OPENING)
        for card in rate_cards_at(plan, subscription, start)
        if card.flat is not None and card.flat.payment_term == "in_advance"
    ]


async def rerate_period(
    *,
    subscription: Subscription,
    plan: Plan,
    customer: Customer,
    period_start: datetime,
    period_end: datetime,
    reader: UsageReader,
    features: Mapping[str, Feature],
    usage_until: datetime | None = None,
) -> RatedPeriod:
    """What the billing period holding `period_start` is worth now (usage as stored now + in-arrears fees):
    compare its `amount_minor` with `invoiced_for_period(...)` and put the difference on the next invoice
    with `adjustment_line`."""
    rated = await rate_window(
        subscription=subscription,
        plan=plan,
        customer=customer,
        period_start=period_start,
        period_end=period_end,
        usage_until=usage_until,
        reader=reader,
        features=features,
    )
    return RatedPeriod(() if rated is None else rated.lines)
