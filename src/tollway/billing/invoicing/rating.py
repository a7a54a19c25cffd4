"""Rating: a subscription's rate cards and usage -> invoice lines. Pure line builders plus the three use cases
the period closer and the preview call (`rate_closing_invoice`, `rate_opening_invoice`, `rerate_period`).

Rules (see docs/billing.md "Invoices"):
- usage lines count the feature's meter slice over [max(period start, active_from), min(period end, active_to,
  usage_until)); usage is never prorated;
- flat fees are prorated by exact duration when the period is cut short by the subscription's start or end;
  in advance -> the invoice that opens the period (the opening invoice, or the closing invoice of the period
  before); in arrears -> the invoice that closes it; one-time fees (no billing cadence) once: in advance on
  the opening invoice, in arrears on the first closing invoice;
- a subscription that ends inside a period it paid in advance gets the unused part back as a negative line;
- every line rounds once to the currency's minor unit (half away from zero); totals sum rounded lines.

Each line's `metadata["rating"]` says why it is on the invoice: "period" (usage and in-arrears fees of the
period closed: what re-rating compares), "advance" (in-advance fees of the next period), "credit" (the
unused part of an in-advance fee), "opening" (the opening invoice's fees), "adjustment" (late usage).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, localcontext

from tollway.billing.customers import Customer
from tollway.billing.features import Feature
from tollway.billing.invoicing.model import InvoiceLine
from tollway.billing.invoicing.usage import NO_USAGE, MeteredUsage, UsageReader, UsageRequest, read_usages
from tollway.billing.periods import add_cadence, fraction, parse_cadence, period_containing
from tollway.billing.plans import Plan, RateCard
from tollway.billing.pricing.flat import price_flat
from tollway.billing.pricing.model import FlatPrice
from tollway.billing.pricing.registry import PRICERS, Pricers
from tollway.billing.pricing.usage import charge_usage, describe_usage
from tollway.billing.subscriptions import Subscription
from tollway.errors import NotFoundError
from tollway.money import decimal_text, from_minor_units, to_minor_units

PERIOD = "period"
ADVANCE = "advance"
CREDIT = "credit"
OPENING = "opening"
ADJUSTMENT = "adjustment"


@dataclass(frozen=True)
class RatedPeriod:
    """What a billing period is worth now: its usage lines and in-arrears fees (the "period" lines)."""

    lines: tuple[InvoiceLine, ...]

    @property
    def amount_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines)


# -- periods and phases ---------------------------------------------------------------------------


def billing_period(subscription: Subscription, at: datetime) -> tuple[datetime, datetime]:
    """The whole anchored billing period [start, end) holding `at` (not cut by the subscription's start/end)."""
    return period_containing(subscription.billing_anchor, parse_cadence(subscription.billing_cadence), at)


def service_window(subscription: Subscription, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end) cut to the subscription's life [active_from, active_to); empty windows have start >= end."""
    cut_start = max(start, subscription.active_from)
    cut_end = end if subscription.active_to is None else min(end, subscription.active_to)
    return cut_start, cut_end


def rate_cards_at(plan: Plan, subscription: Subscription, at: datetime) -> tuple[RateCard, ...]:
    """The rate cards of the plan phase running at `at` (phases follow each other from active_from)."""
    if not plan.phases:
        return ()
    start = subscription.active_from
    for phase in plan.phases[:-1]:
        if phase.duration is None:
            return phase.rate_cards
        end = add_cadence(start, parse_cadence(phase.duration, field="duration"), 1)
        if at < end:
            return phase.rate_cards
        start = end
    return plan.phases[-1].rate_cards


def prorated(price: FlatPrice, part: tuple[datetime, datetime], period: tuple[datetime, datetime]) -> Decimal:
    """The flat fee for `part` of `period`: amount x part / period by exact duration, dividing last (60 x 10/30
    days is exactly 20, where multiplying by a rounded 1/3 is not)."""
    if part == period:
        return price_flat(price)
    with localcontext() as ctx:
        ctx.prec = 60
        return price.amount * Decimal(_us(part[1] - part[0])) / Decimal(_us(period[1] - period[0]))


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# -- text -----------------------------------------------------------------------------------------


def _proration_text(proration: Decimal) -> str:
    with localcontext() as ctx:
        ctx.prec = 40
        percent = (proration * 100).quantize(Decimal("0.01"))
    return f"{decimal_text(percent)}% of the period"


# -- line builders (pure) -------------------------------------------------------------------------


def usage_line(
    *,
    card: RateCard,
    feature: Feature,
    currency: str,
    period_start: datetime,
    period_end: datetime,
    usage: MeteredUsage,
    subscription_id: str | None = None,
    rating: str = PERIOD,
    pricers: Pricers = PRICERS,
) -> InvoiceLine:
    """One usage rate card priced on its metered quantity (free quantity -> price -> discount -> cap -> minimum),
    described in its price model's words."""
    if card.usage is None:
        raise ValueError(f"rate card {card.key!r} has no usage price")
    charge = charge_usage(usage.quantity, card.usage, pricers=pricers)
    return InvoiceLine(
        kind="usage",
        rate_card_key=card.key,
        description=describe_usage(charge, card.usage, feature.name or feature.key, currency, pricers=pricers),
        period_start=period_start,
        period_end=period_end,
        amount=charge.amount,
        amount_minor=to_minor_units(charge.amount, currency),
        feature_key=feature.key,
        subscription_id=subscription_id,
        charge=charge,
        slices=usage.slices,
        metadata={"rating": rating},
    )


def flat_line(
    *,
    card: RateCard,
    currency: str,
    period_start: datetime,
    period_end: datetime,
    proration: Decimal = Decimal(1),
    subscription_id: str | None = None,
    rating: str = PERIOD,
    credit: bool = False,
    amount: Decimal | None = None,
) -> InvoiceLine:
    """A flat fee for [period_start, period_end): `amount` (default: `proration` of the whole period's amount,
    exact), shown with its proration. `credit`: the line gives that amount back (negative)."""
    if card.flat is None:
        raise ValueError(f"rate card {card.key!r} has no flat price")
    if amount is None:
        amount = price_flat(card.flat, proration)
    if credit:
        amount = -amount
    description = card.name or card.key
    if credit:
        description = f"{description}: unused time credited ({_proration_text(proration)})"
    elif proration != 1:
        description = f"{description} ({_proration_text(proration)})"
    return InvoiceLine(
        kind="flat",
        rate_card_key=card.key,
        description=description,
        period_start=period_start,
        period_end=period_end,
        amount=amount,
        amount_minor=to_minor_units(amount, currency),
        feature_key=card.feature_key,
        subscription_id=subscription_id,
        proration=proration if proration != 1 else None,
        metadata={"rating": rating, "payment_term": card.flat.payment_term},
    )


def adjustment_line(
    *,
    rated: RatedPeriod,
    invoiced_minor: int,
    currency: str,
    period_start: datetime,
    period_end: datetime,
    adjusts_invoice_id: str,
    adjusts_invoice_number: str | None = None,
    subscription_id: str | None = None,
) -> InvoiceLine | None:
    """Late usage: the period re-rated (`rated`) minus what was invoiced for it so far (`invoiced_minor`, see
    `invoiced_for_period`). None when nothing changed. Negative where the re-rated period is worth less."""
    difference = rated.amount_minor - invoiced_minor
    if difference == 0:
        return None
    reference = adjusts_invoice_number or adjusts_invoice_id
    return InvoiceLine(
        kind="adjustment",
        rate_card_key="adjustment",
        description=(
            f"Adjustment for {period_start:%Y-%m-%d} to {period_end:%Y-%m-%d} (usage received after invoice "
            f"{reference} was issued)"
        ),
        period_start=period_start,
        period_end=period_end,
        amount=from_minor_units(difference, currency),
        amount_minor=difference,
        subscription_id=subscription_id,
        adjusts_invoice_id=adjusts_invoice_id,
        metadata={"rating": ADJUSTMENT},
    )


def invoiced_for_period(original: Iterable[InvoiceLine], adjustments: Iterable[InvoiceLine] = ()) -> int:
    """What a period has been invoiced so far, to compare with `rerate_period`: the "period" lines (usage and
    in-arrears fees) of its closing invoice plus the adjustment lines already made for that invoice."""
    total = sum(line.amount_minor for line in original if line.metadata.get("rating", PERIOD) == PERIOD)
    return total + sum(line.amount_minor for line in adjustments if line.kind == "adjustment")


def advance_invoiced(lines: Iterable[InvoiceLine], period_start: datetime, period_end: datetime) -> dict[str, Decimal]:
    """From the lines of a subscription's earlier invoices: what was charged in advance for the billing period
    [period_start, period_end), by rate card key (the input `rate_closing_invoice` needs for credits)."""
    charged: dict[str, Decimal] = {}
    for line in lines:
        if (
            line.kind == "flat"
            and line.metadata.get("payment_term") == "in_advance"
            and line.metadata.get("rating") in (ADVANCE, OPENING)
            and period_start <= line.period_start < period_end
        ):
            charged[line.rate_card_key] = charged.get(line.rate_card_key, Decimal(0)) + line.amount
    return charged


# -- use cases --------------------------------------------------------------------------------------


def _feature(features: Mapping[str, Feature], card: RateCard) -> Feature:
    feature = features.get(card.feature_key or "")
    if feature is None:
        raise NotFoundError(f"feature {card.feature_key!r} of rate card {card.key!r} not found", field="feature")
    return feature


async def _period_lines(
    *,
    subscription: Subscription,
    plan: Plan,
    customer: Customer,
    period: tuple[datetime, datetime],
    window: tuple[datetime, datetime],
    usage_until: datetime | None,
    reader: UsageReader,
    features: Mapping[str, Feature],
) -> list[InvoiceLine]:
    start, end = window
    usage_end = end if usage_until is None else min(end, usage_until)
    first = start == subscription.active_from
    lines: list[InvoiceLine] = []
    cards = rate_cards_at(plan, subscription, start)
    requests = [
        UsageRequest(_feature(features, card), tuple(customer.subjects), start, usage_end)
        for card in cards
        if card.usage is not None and customer.subjects and start < usage_end
    ]
    usages = iter(await read_usages(reader, requests))  # one read per meter, in the cards' order
    for card in cards:
        if card.usage is not None:
            feature = _feature(features, card)
            usage = next(usages) if customer.subjects and start < usage_end else NO_USAGE
            lines.append(
                usage_line(
                    card=card,
                    feature=feature,
                    currency=subscription.currency,
                    period_start=start,
                    period_end=end,
                    usage=usage,
                    subscription_id=subscription.id,
                )
            )
        elif card.flat is not None and card.flat.payment_term == "in_arrears":
            if card.billing_cadence is None and not first:
                continue
            lines.append(period_fee_line(card, subscription, (start, end), period, rating=PERIOD))
    return lines


def period_fee_line(
    card: RateCard,
    subscription: Subscription,
    window: tuple[datetime, datetime],
    period: tuple[datetime, datetime],
    *,
    rating: str,
) -> InvoiceLine:
    """A flat fee over the service `window` of its billing `period`: a one-time fee whole, a recurring one
    prorated by the window's share of the period."""
    assert card.flat is not None
    start, end = window
    one_time = card.billing_cadence is None
    return flat_line(
        card=card,
        currency=subscription.currency,
        period_start=start,
        period_end=end,
        proration=Decimal(1) if one_time else fraction(start, end, *period),
        subscription_id=subscription.id,
        rating=rating,
        amount=price_flat(card.flat) if one_time else prorated(card.flat, window, period),
    )


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
    """The lines of the invoice closing the billing period that holds `period_start` (a whole anchored period
    or one already cut to the subscription; it is cut to [active_from, active_to) here either way).

    - "period": usage of the period (up to `usage_until` when given: a preview) and its in-arrears fees
      (prorated when cut short; one-time in-arrears fees on the first period only);
    - "credit": when the subscription ends inside this period, the in-advance fees' unused part, negative:
      what was charged in advance for the period (`advance_charged` by rate card key, see `advance_invoiced`;
      None: assume each fee was charged for the whole period from its start, i.e. before the end was known)
      minus the fee for the time actually served;
    - "advance": when the subscription continues past the period, the next period's in-advance fees
      (prorated when a known end cuts the next period short).
    """
    period = billing_period(subscription, period_start)
    start, end = service_window(subscription, max(period[0], period_start), min(period[1], period_end))
    if start >= end:
        return []
    lines = await _period_lines(
        subscription=subscription,
        plan=plan,
        customer=customer,
        period=period,
        window=(start, end),
        usage_until=usage_until,
        reader=reader,
        features=features,
    )
    currency = subscription.currency
    ends_here = subscription.active_to is not None and subscription.active_to < period[1]
    if ends_here:
        for card in rate_cards_at(plan, subscription, start):
            if card.flat is None or card.flat.payment_term != "in_advance" or card.billing_cadence is None:
                continue
            served = prorated(card.flat, (start, end), period)
            if advance_charged is None:
                charged = prorated(card.flat, (start, period[1]), period)
            else:
                charged = advance_charged.get(card.key, Decimal(0))
            with localcontext() as ctx:
                ctx.prec = 60
                unused = charged - served
            if unused == 0:
                continue
            lines.append(
                flat_line(
                    card=card,
                    currency=currency,
                    period_start=end,
                    period_end=period[1],
                    proration=fraction(end, period[1], *period),
                    subscription_id=subscription.id,
                    rating=CREDIT,
                    credit=True,
                    amount=unused,
                )
            )
    else:
        following = billing_period(subscription, period[1])
        next_start, next_end = service_window(subscription, *following)
        if next_start < next_end:
            for card in rate_cards_at(plan, subscription, next_start):
                if card.flat is None or card.flat.payment_term != "in_advance" or card.billing_cadence is None:
                    continue
                lines.append(
                    flat_line(
                        card=card,
                        currency=currency,
                        period_start=next_start,
                        period_end=next_end,
                        proration=fraction(next_start, next_end, *following),
                        subscription_id=subscription.id,
                        rating=ADVANCE,
                        amount=prorated(card.flat, (next_start, next_end), following),
                    )
                )
    return lines


async def rate_opening_invoice(*, subscription: Subscription, plan: Plan) -> list[InvoiceLine]:
    """The lines of the subscription's opening invoice (at active_from): its in-advance fees for the first
    period, prorated when that period is cut short, and its one-time in-advance fees. Empty: no opening invoice.
    """
    period = billing_period(subscription, subscription.active_from)
    start, end = service_window(subscription, *period)
    if start >= end:
        return []
    lines: list[InvoiceLine] = []
    for card in rate_cards_at(plan, subscription, start):
        if card.flat is None or card.flat.payment_term != "in_advance":
            continue
        lines.append(period_fee_line(card, subscription, (start, end), period, rating=OPENING))
    return lines


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
    period = billing_period(subscription, period_start)
    start, end = service_window(subscription, max(period[0], period_start), min(period[1], period_end))
    if start >= end:
        return RatedPeriod(())
    lines = await _period_lines(
        subscription=subscription,
        plan=plan,
        customer=customer,
        period=period,
        window=(start, end),
        usage_until=usage_until,
        reader=reader,
        features=features,
    )
    return RatedPeriod(tuple(lines))


def invoice_total_minor(lines: Sequence[InvoiceLine]) -> int:
    """The sum of the rounded lines."""
    return sum(line.amount_minor for line in lines)
