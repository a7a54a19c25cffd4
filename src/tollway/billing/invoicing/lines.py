"""Invoice lines, built pure from rate cards, metered usage and windows: usage lines, flat fees (prorated,
credited, in advance), adjustments for late usage, and what earlier invoices already charged.

Each line's `metadata["rating"]` says why it is on the invoice: "period" (usage and in-arrears fees of the
period closed: what re-rating compares), "advance" (in-advance fees of the next period), "credit" (the
unused part of an in-advance fee), "opening" (the opening invoice's fees), "adjustment" (late usage). Every
line rounds once to the currency's minor unit (half away from zero); totals sum rounded lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tollway.billing.features import Feature
from tollway.billing.invoicing.model import InvoiceLine
from tollway.billing.invoicing.phases import Window, billing_period, micros, rate_cards_at, service_window
from tollway.billing.invoicing.text import adjustment_description, flat_description
from tollway.billing.invoicing.usage import MeteredUsage
from tollway.billing.periods import fraction
from tollway.billing.plans import Plan, RateCard
from tollway.billing.pricing.flat import price_flat
from tollway.billing.pricing.model import FlatPrice
from tollway.billing.pricing.registry import PRICERS, Pricers
from tollway.billing.pricing.usage import charge_usage, describe_usage
from tollway.billing.subscriptions import Subscription
from tollway.money import from_minor_units, prorate, prorated_difference, to_minor_units

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


def prorated(price: FlatPrice, part: Window, period: Window) -> Decimal:
    """The flat fee for `part` of `period`: amount x part / period by exact duration, dividing last (60 x 10/30
    days is exactly 20, where multiplying by a rounded 1/3 is not); a quotient that does not terminate is
    rounded once to 60 significant digits (`tollway.money.prorate`)."""
    if part == period:
        return price_flat(price)
    return prorate(price.amount, micros(part[1] - part[0]), micros(period[1] - period[0]))


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
    return InvoiceLine(
        kind="flat",
        rate_card_key=card.key,
        description=flat_description(card, proration, credit=credit),
        period_start=period_start,
        period_end=period_end,
        amount=amount,
        amount_minor=to_minor_units(amount, currency),
        feature_key=card.feature_key,
        subscription_id=subscription_id,
        proration=proration if proration != 1 else None,
        metadata={"rating": rating, "payment_term": card.flat.payment_term},
    )


def period_fee_line(
    card: RateCard,
    subscription: Subscription,
    window: Window,
    period: Window,
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


def _recurring_in_advance(card: RateCard) -> bool:
    return card.flat is not None and card.flat.payment_term == "in_advance" and card.billing_cadence is not None


def credit_lines(
    subscription: Subscription,
    plan: Plan,
    period: Window,
    window: Window,
    advance_charged: Mapping[str, Decimal] | None,
) -> list[InvoiceLine]:
    """A subscription ending at the end of `window`, inside its billing `period`: each recurring in-advance fee's
    unused part, negative — what was charged in advance for the period (`advance_charged` by rate card key, see
    `advance_invoiced`; None: assume each fee was charged for the whole period from the window's start, i.e.
    before the end was known) minus the fee for the time actually served."""
    start, end = window
    lines: list[InvoiceLine] = []
    for card in rate_cards_at(plan, subscription, start):
        if not _recurring_in_advance(card):
            continue
        assert card.flat is not None
        served = prorated(card.flat, (start, end), period)
        if advance_charged is None:
            charged = prorated(card.flat, (start, period[1]), period)
        else:
            charged = advance_charged.get(card.key, Decimal(0))
        unused = prorated_difference(charged, served)
        if unused == 0:
            continue
        lines.append(
            flat_line(
                card=card,
                currency=subscription.currency,
                period_start=end,
                period_end=period[1],
                proration=fraction(end, period[1], *period),
                subscription_id=subscription.id,
                rating=CREDIT,
                credit=True,
                amount=unused,
            )
        )
    return lines


def advance_lines(subscription: Subscription, plan: Plan, period: Window) -> list[InvoiceLine]:
    """The recurring in-advance fees of the billing period after `period` (prorated when a known end cuts it
    short); none when the subscription does not run into it."""
    following = billing_period(subscription, period[1])
    next_start, next_end = service_window(subscription, *following)
    if next_start >= next_end:
        return []
    return [
        flat_line(
            card=card,
            currency=subscription.currency,
            period_start=next_start,
            period_end=next_end,
            proration=fraction(next_start, next_end, *following),
            subscription_id=subscription.id,
            rating=ADVANCE,
            amount=prorated(card.flat, (next_start, next_end), following),
        )
        for card in rate_cards_at(plan, subscription, next_start)
        if _recurring_in_advance(card) and card.flat is not None
    ]


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
    return InvoiceLine(
        kind="adjustment",
        rate_card_key="adjustment",
        description=adjustment_description(period_start, period_end, adjusts_invoice_number or adjusts_invoice_id),
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


def invoice_total_minor(lines: Sequence[InvoiceLine]) -> int:
    """The sum of the rounded lines."""
    return sum(line.amount_minor for line in lines)
