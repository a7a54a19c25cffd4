"""Burn-down of money credits (pure): order, expiry at the period boundary, a grant bigger than the invoice,
voided grants, feature filters, negative lines. Every expected amount is worked out by hand in the comments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tollway.billing.credits.model import CreditGrant, GrantBalance, GrantStatus
from tollway.billing.invoicing.credit_burndown import Application, apply_credits
from tollway.billing.invoicing.model import InvoiceLine

DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
JAN_1 = datetime(2027, 1, 1, tzinfo=UTC)
ISSUED = JAN_1 + timedelta(hours=1)
US = timedelta(microseconds=1)


def line(n: int, minor: int, feature: str | None = "output-tokens", kind: str = "usage") -> InvoiceLine:
    return InvoiceLine(
        kind="usage" if kind == "usage" else "flat",
        rate_card_key=feature or "platform-fee",
        description=f"line {n}",
        period_start=DEC_1,
        period_end=JAN_1,
        amount=Decimal(minor) / 100,
        amount_minor=minor,
        feature_key=feature,
        id=f"inv-{n}",
    )


def grant(
    gid: str,
    minor: int,
    *,
    priority: int = 1,
    expires: datetime | None = None,
    created: datetime = DEC_1,
    status: GrantStatus = "active",
    features: tuple[str, ...] | None = None,
    currency: str = "USD",
) -> GrantBalance:
    g = CreditGrant(
        id=gid,
        customer_id="c1",
        name=gid,
        amount_minor=minor,
        currency=currency,
        funding_method="none",
        priority=priority,
        effective_at=created,
        status=status,
        created_at=created,
        expires_at=expires,
        features=features,
    )
    return GrantBalance(g, minor)


def burn(lines: Sequence[InvoiceLine], grants: Sequence[GrantBalance]) -> Application:
    return apply_credits(
        lines, grants, invoice_id="inv", currency="USD", at=ISSUED, period_start=DEC_1, period_end=JAN_1
    )


def applied(app: Application) -> list[tuple[str, int]]:
    return [(str(cl.metadata["grant_id"]), cl.amount_minor) for cl in app.lines]


def rows(app: Application) -> list[tuple[str, str | None, int, int, int]]:
    return [
        (r.grant_id, r.invoice_line_id, r.amount_minor, r.balance_before_minor, r.balance_after_minor)
        for r in app.transactions
    ]


def test_three_grants_burn_by_priority_then_earliest_expiry() -> None:
    lines = [line(1, 3000), line(2, 1000, feature=None, kind="flat")]  # $30 usage, $10 flat fee: $40
    grants = [
        grant("late-low", 2500, priority=2),  # priority 2: last, whatever its age
        grant("feb", 500, priority=1, expires=datetime(2027, 2, 1, tzinfo=UTC)),
        grant("jan15", 800, priority=1, expires=datetime(2027, 1, 15, tzinfo=UTC)),  # same priority, expires first
    ]
    app = burn(lines, grants)
    # jan15 pays $8 of line 1 (22 left), feb $5 (17 left), late-low $17 of line 1 then $8 of line 2 (2 left)
    assert applied(app) == [("jan15", -800), ("feb", -500), ("late-low", -2500)]
    assert rows(app) == [
        ("jan15", "inv-1", -800, 800, 0),
        ("feb", "inv-1", -500, 500, 0),
        ("late-low", "inv-1", -1700, 2500, 800),
        ("late-low", "inv-2", -800, 800, 0),
    ]
    assert [cl.id for cl in app.lines] == ["inv-3", "inv-4", "inv-5"]
    assert app.applied_minor == 3800  # $40 - $38 = $2 due


def test_ties_burn_the_oldest_first() -> None:
    older = grant("older", 300, created=DEC_1)
    newer = grant("newer", 300, created=DEC_1 + timedelta(days=3))
    app = burn([line(1, 500)], [newer, older])
    assert applied(app) == [("older", -300), ("newer", -200)]


def test_expiry_exactly_at_the_period_end_pays_one_microsecond_before_does_not() -> None:
    at_end = burn([line(1, 1000)], [grant("g", 400, expires=JAN_1)])
    assert applied(at_end) == [("g", -400)]  # the period's usage all ran before the grant expired
    before = burn([line(1, 1000)], [grant("g", 400, expires=JAN_1 - US)])
    assert applied(before) == []  # usage of the period reaches past its expiry: nothing
    assert before.transactions == ()


def test_a_grant_bigger_than_the_invoice_pays_it_all_and_keeps_the_rest() -> None:
    app = burn([line(1, 2700)], [grant("big", 10000)])
    assert rows(app) == [("big", "inv-1", -2700, 10000, 7300)]
    assert applied(app) == [("big", -2700)]  # $27 due -> $0


def test_voided_pending_and_other_currency_grants_pay_nothing() -> None:
    grants = [
        grant("void", 500, status="voided"),
        grant("pending", 500, status="pending"),
        grant("eur", 500, currency="EUR"),
        grant("expired", 500, status="expired"),
    ]
    assert burn([line(1, 1000)], grants).lines == ()


def test_feature_filters_pay_only_their_lines() -> None:
    lines = [line(1, 600, feature="input-tokens"), line(2, 900, feature="output-tokens"), line(3, 4900, feature=None)]
    app = burn(lines, [grant("out-only", 2000, features=("output-tokens",))])
    assert rows(app) == [("out-only", "inv-2", -900, 2000, 1100)]


def test_credits_never_make_the_total_due_negative() -> None:
    refund = InvoiceLine("flat", "platform-fee", "unused", DEC_1, JAN_1, Decimal("-4"), -400, id="inv-2")
    app = burn([line(1, 1000), refund], [grant("g", 2000)])
    # subtotal $10 - $4 = $6: credits pay $6, not the $10 line in full
    assert applied(app) == [("g", -600)]


def test_a_second_application_of_the_same_grant_starts_from_its_new_balance() -> None:
    first = burn([line(1, 1234)], [grant("g", 2000)])
    (row,) = first.transactions
    left = GrantBalance(grant("g", 2000).grant, row.balance_after_minor)
    second = burn([line(1, 1234)], [left])
    assert rows(second) == [("g", "inv-1", -766, 766, 0)]
