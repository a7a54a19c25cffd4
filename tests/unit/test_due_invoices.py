"""due_invoices: which invoices a subscription should have by a moment. A period's closing invoice is due at
its end plus the grace period, not one microsecond before; the last period of an ended subscription closes at
its end (plus grace). Keys are literal: "{subscription}:open" and "{subscription}:{period start, UTC micros}"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tollway.billing.invoicing.close import DueInvoice, due_invoices
from tollway.billing.subscriptions import Subscription

US = timedelta(microseconds=1)
GRACE = timedelta(hours=1)
MARCH_1 = datetime(2026, 3, 1, tzinfo=UTC)
MARCH_11 = datetime(2026, 3, 11, tzinfo=UTC)
APRIL_1 = datetime(2026, 4, 1, tzinfo=UTC)
MAY_1 = datetime(2026, 5, 1, tzinfo=UTC)
MARCH_11_US = 1773187200_000000  # 2026-03-11T00:00Z in microseconds since the epoch
APRIL_1_US = 1775001600_000000  # 2026-04-01T00:00Z


def subscription(active_from: datetime = MARCH_11, active_to: datetime | None = None) -> Subscription:
    return Subscription(
        id="s1",
        customer_id="c1",
        plan_id="p1",
        plan_key="pro",
        plan_version=1,
        currency="USD",
        billing_cadence="P1M",
        billing_anchor=MARCH_1,
        active_from=active_from,
        active_to=active_to,
    )


def summary(due: list[DueInvoice]) -> list[tuple[str, bool, datetime, datetime]]:
    return [(d.key, d.opening, d.period_start, d.period_end) for d in due]


OPENING = ("s1:open", True, MARCH_11, APRIL_1)
MARCH = (f"s1:{MARCH_11_US}", False, MARCH_11, APRIL_1)
APRIL = (f"s1:{APRIL_1_US}", False, APRIL_1, MAY_1)


def test_the_literal_keys_are_the_period_starts_in_micros() -> None:
    assert int(MARCH_11.timestamp()) * 1_000_000 == MARCH_11_US
    assert int(APRIL_1.timestamp()) * 1_000_000 == APRIL_1_US


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (MARCH_11 - US, []),  # not started
        (MARCH_11, [OPENING]),
        (APRIL_1, [OPENING]),  # March ended, but the grace period runs
        (APRIL_1 + GRACE - US, [OPENING]),  # one microsecond before period end + grace
        (APRIL_1 + GRACE, [OPENING, MARCH]),  # exactly at period end + grace
        (MAY_1 + GRACE - US, [OPENING, MARCH]),
        (MAY_1 + GRACE, [OPENING, MARCH, APRIL]),
    ],
)
def test_a_closing_invoice_is_due_at_period_end_plus_grace(
    now: datetime, expected: list[tuple[str, bool, datetime, datetime]]
) -> None:
    assert summary(due_invoices(subscription(), now, GRACE)) == expected


def test_without_grace_a_period_is_due_at_its_end() -> None:
    assert summary(due_invoices(subscription(), APRIL_1 - US, timedelta(0))) == [OPENING]
    assert summary(due_invoices(subscription(), APRIL_1, timedelta(0))) == [OPENING, MARCH]


def test_a_longer_grace_waits_longer() -> None:
    day = timedelta(days=1)
    assert summary(due_invoices(subscription(), APRIL_1 + day - US, day)) == [OPENING]
    assert summary(due_invoices(subscription(), APRIL_1 + day, day)) == [OPENING, MARCH]


def test_an_ended_subscription_closes_at_its_end_plus_grace() -> None:
    ended = subscription(active_to=datetime(2026, 4, 16, 12, tzinfo=UTC))
    last = (f"s1:{APRIL_1_US}", False, APRIL_1, datetime(2026, 4, 16, 12, tzinfo=UTC))
    end = datetime(2026, 4, 16, 12, tzinfo=UTC)
    assert summary(due_invoices(ended, end + GRACE - US, GRACE)) == [OPENING, MARCH]
    assert summary(due_invoices(ended, end + GRACE, GRACE)) == [OPENING, MARCH, last]
    # and nothing after it, however late
    assert summary(due_invoices(ended, datetime(2027, 1, 1, tzinfo=UTC), GRACE)) == [OPENING, MARCH, last]


def test_a_subscription_that_never_ran_has_nothing_due() -> None:
    assert due_invoices(subscription(active_to=MARCH_11), datetime(2027, 1, 1, tzinfo=UTC), GRACE) == []
