"""Billing periods, service windows and plan phases as invoicing sees them (pure).

A billing period is the whole anchored period [start, end) of the subscription's cadence; its service window
is that period cut to the subscription's life [active_from, active_to) (and, for a closing invoice, to the part
asked for). The plan phase running at an instant gives the rate cards that apply.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tollway.billing.periods import add_cadence, parse_cadence, period_containing
from tollway.billing.plans import Plan, RateCard
from tollway.billing.subscriptions import Subscription

Window = tuple[datetime, datetime]


def billing_period(subscription: Subscription, at: datetime) -> Window:
    """The whole anchored billing period [start, end) holding `at` (not cut by the subscription's start/end)."""
    return period_containing(subscription.billing_anchor, parse_cadence(subscription.billing_cadence), at)


def service_window(subscription: Subscription, start: datetime, end: datetime) -> Window:
    """[start, end) cut to the subscription's life [active_from, active_to); empty windows have start >= end."""
    cut_start = max(start, subscription.active_from)
    cut_end = end if subscription.active_to is None else min(end, subscription.active_to)
    return cut_start, cut_end


def period_window(subscription: Subscription, start: datetime, end: datetime | None = None) -> tuple[Window, Window]:
    """(the billing period holding `start`, its service window cut to [start, end) and the subscription's life):
    what an invoice covers (the opening one: from active_from to the period's end, `end` None). The window may be
    empty (start >= end)."""
    period = billing_period(subscription, start)
    return period, service_window(
        subscription, max(period[0], start), period[1] if end is None else min(period[1], end)
    )


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


def micros(delta: timedelta) -> int:
    """A duration in whole microseconds, exact."""
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
