"""An invoice equals an independent computation from the raw events.

Random plans (unit, graduated, volume, package price with free quantity, discount, minimum and maximum;
a flat fee in advance or in arrears), random subscription starts and ends inside the period, random events
(other subjects, other token types, before the start, after the end), some rolled up and some not, and late
events after the invoice. The oracle below filters and sums the raw events itself and prices them with
`fractions.Fraction`; it never calls Tollway's pricing, money or metering code.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollway.adapters.memory.store import MemoryEventStore
from tollway.billing.customers import Customer
from tollway.billing.features import Feature
from tollway.billing.invoicing.lines import adjustment_line, invoiced_for_period
from tollway.billing.invoicing.rating import rate_closing_invoice, rerate_period
from tollway.billing.invoicing.usage import MeteringUsageReader
from tollway.billing.plans import Phase, Plan, RateCard
from tollway.billing.pricing.model import (
    FlatPrice,
    PackagePrice,
    PaymentTerm,
    Tier,
    TieredPrice,
    UnitPrice,
    UsagePrice,
    UsageTerms,
)
from tollway.billing.subscriptions import Subscription
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService

PERIOD_START = datetime(2026, 3, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 4, 1, tzinfo=UTC)
PERIOD_SECONDS = int((PERIOD_END - PERIOD_START).total_seconds())  # 31 days
FEATURE = Feature(
    id="f1", key="output-tokens", name="output tokens", meter_slug="llm_tokens", filters={"type": ("output",)}
)
CUSTOMER = Customer(id="c1", key="acme", name="Acme", subjects=("acme-corp", "acme-batch"))


@dataclass(frozen=True)
class RawEvent:
    seconds: int  # from PERIOD_START (negative: before the period)
    subject: str
    token_type: str
    tokens: int


@dataclass(frozen=True)
class Case:
    price_kind: str
    unit: int  # price in millionths of a dollar
    tiers: tuple[tuple[int | None, int, int], ...]  # (up_to, unit price in millionths, flat price in cents)
    package: tuple[int, int]  # (size, price in cents)
    free: int
    discount: int  # percent
    minimum: int | None  # cents
    maximum: int | None  # cents
    flat: tuple[str, int] | None  # (payment term, cents)
    start: int  # seconds into the period
    end: int | None  # seconds into the period (> start), None: continues
    events: tuple[RawEvent, ...]
    late: tuple[RawEvent, ...]
    rolled: int  # how many events are rolled up before rating


# -- the oracle -------------------------------------------------------------------------------------------


def oracle_quantity(case: Case, events: tuple[RawEvent, ...]) -> int:
    end = case.end if case.end is not None else PERIOD_SECONDS
    return sum(
        e.tokens
        for e in events
        if e.subject in CUSTOMER.subjects and e.token_type == "output" and case.start <= e.seconds < end
    )


def oracle_price(case: Case, quantity: int) -> Fraction:
    if case.price_kind == "unit":
        return quantity * Fraction(case.unit, 1_000_000)
    if case.price_kind == "package":
        size, cents = case.package
        packages = -(-quantity // size)
        return packages * Fraction(cents, 100)
    if case.price_kind == "graduated":
        total, lower = Fraction(0), 0
        for index, (up_to, micros, cents) in enumerate(case.tiers):
            top = quantity if up_to is None else min(quantity, up_to)
            if index == 0 or quantity > lower:
                total += max(0, top - lower) * Fraction(micros, 1_000_000) + Fraction(cents, 100)
            if up_to is None:
                break
            lower = up_to
        return total
    for up_to, micros, cents in case.tiers:  # volume
        if up_to is None or quantity <= up_to:
            return quantity * Fraction(micros, 1_000_000) + Fraction(cents, 100)
    raise AssertionError("the last tier has no up_to")


def oracle_usage(case: Case, quantity: int) -> Fraction:
    billable = max(0, quantity - case.free)
    amount = oracle_price(case, billable)
    amount -= amount * Fraction(case.discount, 100)
    if case.maximum is not None:
        amount = min(amount, Fraction(case.maximum, 100))
    if case.minimum is not None:
        amount = max(amount, Fraction(case.minimum, 100))
    return amount


def cents(amount: Fraction) -> int:
    """Half away from zero."""
    scaled = abs(amount) * 100
    rounded = int(scaled + Fraction(1, 2))
    return rounded if amount >= 0 else -rounded


def oracle_lines(case: Case, events: tuple[RawEvent, ...]) -> list[int]:
    """The invoice's lines in cents: usage, then the flat fee (in arrears: this period; in advance: the credit
    or the next period's fee)."""
    lines = [cents(oracle_usage(case, oracle_quantity(case, events)))]
    if case.flat is None:
        return lines
    term, fee = case.flat
    end = case.end if case.end is not None else PERIOD_SECONDS
    whole = Fraction(fee, 100)
    if term == "in_arrears":
        lines.append(cents(whole * Fraction(end - case.start, PERIOD_SECONDS)))
    elif case.end is None:
        lines.append(cents(whole))  # April's fee, whole
    elif case.end < PERIOD_SECONDS:
        lines.append(cents(-whole * Fraction(PERIOD_SECONDS - case.end, PERIOD_SECONDS)))
    return lines


# -- what Tollway computes ----------------------------------------------------------------------------------


def tollway_plan(case: Case) -> Plan:
    price: UsagePrice
    if case.price_kind == "unit":
        price = UnitPrice(Decimal(case.unit) / 1_000_000)
    elif case.price_kind == "package":
        price = PackagePrice(amount=Decimal(case.package[1]) / 100, quantity_per_package=Decimal(case.package[0]))
    else:
        price = TieredPrice(
            "graduated" if case.price_kind == "graduated" else "volume",
            tuple(
                Tier(
                    Decimal(up_to) if up_to is not None else None,
                    Decimal(micros) / 1_000_000,
                    Decimal(cents_) / 100,
                )
                for up_to, micros, cents_ in case.tiers
            ),
        )
    terms = UsageTerms(
        price,
        free_quantity=Decimal(case.free),
        discount_percentage=Decimal(case.discount),
        minimum_amount=Decimal(case.minimum) / 100 if case.minimum is not None else None,
        maximum_amount=Decimal(case.maximum) / 100 if case.maximum is not None else None,
    )
    cards = [RateCard(key="output", name="Output", feature_key="output-tokens", usage=terms, billing_cadence="P1M")]
    if case.flat is not None:
        term: PaymentTerm = "in_advance" if case.flat[0] == "in_advance" else "in_arrears"
        cards.append(
            RateCard(
                key="fee",
                name="Fee",
                flat=FlatPrice(Decimal(case.flat[1]) / 100, payment_term=term),
                billing_cadence="P1M",
            )
        )
    return Plan(
        id="p1",
        key="plan",
        version=1,
        name="Plan",
        currency="USD",
        billing_cadence="P1M",
        phases=(Phase(key="default", name="Default", rate_cards=tuple(cards)),),
        status="published",
    )


def cloud_event(event: RawEvent, n: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"e{n}",
        "source": "oracle",
        "type": "llm.tokens",
        "subject": event.subject,
        "time": (PERIOD_START + timedelta(seconds=event.seconds)).isoformat(),
        "data": {"tokens": event.tokens, "type": event.token_type, "model": "m", "provider": "p", "status_code": 200},
    }


async def run_case(case: Case) -> tuple[list[int], list[int] | None, int | None]:
    """(closing invoice lines in cents, None, None) and, with late events, the adjustment line's cents."""
    clock = FrozenClock(PERIOD_END + timedelta(days=30))
    store = MemoryEventStore(clock)
    metering = MeteringService(store, clock)
    await metering.sync_meters([])
    reader = MeteringUsageReader(metering)
    if case.rolled:
        await metering.ingest([cloud_event(e, n) for n, e in enumerate(case.events[: case.rolled])])
    await store.roll_up()
    rest = case.events[case.rolled :]
    if rest:
        await metering.ingest([cloud_event(e, case.rolled + n) for n, e in enumerate(rest)])
    subscription = Subscription(
        id="s1",
        customer_id="c1",
        plan_id="p1",
        plan_key="plan",
        plan_version=1,
        currency="USD",
        billing_cadence="P1M",
        billing_anchor=PERIOD_START,
        active_from=PERIOD_START + timedelta(seconds=case.start),
        active_to=PERIOD_START + timedelta(seconds=case.end) if case.end is not None else None,
    )
    plan = tollway_plan(case)
    common: dict[str, Any] = {
        "subscription": subscription,
        "plan": plan,
        "customer": CUSTOMER,
        "period_start": PERIOD_START,
        "period_end": PERIOD_END,
        "reader": reader,
        "features": {FEATURE.key: FEATURE},
    }
    lines = await rate_closing_invoice(usage_until=None, **common)
    if not case.late:
        return [line.amount_minor for line in lines], None, None
    start = len(case.events) + 1
    await metering.ingest([cloud_event(e, start + n) for n, e in enumerate(case.late)])
    rated = await rerate_period(**common)
    adjustment = adjustment_line(
        rated=rated,
        invoiced_minor=invoiced_for_period(lines),
        currency="USD",
        period_start=PERIOD_START,
        period_end=PERIOD_END,
        adjusts_invoice_id="inv1",
    )
    return (
        [line.amount_minor for line in lines],
        [line.amount_minor for line in rated.lines],
        adjustment.amount_minor if adjustment is not None else None,
    )


# -- strategies -----------------------------------------------------------------------------------------------

events = st.builds(
    RawEvent,
    seconds=st.integers(-3 * 86_400, PERIOD_SECONDS + 3 * 86_400),
    subject=st.sampled_from(["acme-corp", "acme-batch", "globex"]),
    token_type=st.sampled_from(["output", "output", "input"]),
    tokens=st.integers(0, 5000),
)


@st.composite
def tiers(draw: st.DrawFn) -> tuple[tuple[int | None, int, int], ...]:
    bounds = sorted(draw(st.sets(st.integers(1, 20_000), min_size=0, max_size=3)))
    prices = [(draw(st.integers(0, 20_000)), draw(st.integers(0, 500))) for _ in range(len(bounds) + 1)]
    return tuple((up_to, micros, cents_) for up_to, (micros, cents_) in zip([*bounds, None], prices, strict=True))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    start = draw(st.one_of(st.just(0), st.integers(0, PERIOD_SECONDS - 1)))
    end = draw(st.one_of(st.none(), st.integers(start + 1, PERIOD_SECONDS)))
    minimum = draw(st.one_of(st.none(), st.integers(0, 5000)))
    maximum = draw(st.one_of(st.none(), st.integers(0, 50_000)))
    if minimum is not None and maximum is not None and minimum > maximum:
        minimum, maximum = maximum, minimum
    raw = tuple(draw(st.lists(events, max_size=25)))
    return Case(
        price_kind=draw(st.sampled_from(["unit", "graduated", "volume", "package"])),
        unit=draw(st.integers(0, 20_000)),
        tiers=draw(tiers()),
        package=(draw(st.integers(1, 3000)), draw(st.integers(0, 1000))),
        free=draw(st.one_of(st.just(0), st.integers(0, 3000))),
        discount=draw(st.one_of(st.just(0), st.integers(0, 100))),
        minimum=minimum,
        maximum=maximum,
        flat=draw(
            st.one_of(st.none(), st.tuples(st.sampled_from(["in_advance", "in_arrears"]), st.integers(1, 99_999)))
        ),
        start=start,
        end=end,
        events=raw,
        late=tuple(draw(st.lists(events, max_size=5))),
        rolled=draw(st.integers(0, len(raw))),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_invoice_matches_the_oracle(case: Case) -> None:
    lines, rerated, adjustment = asyncio.run(run_case(case))
    expected = oracle_lines(case, case.events)
    assert lines == expected
    if case.late:
        everything = case.events + case.late
        worth = oracle_lines(case, everything)
        # re-rating covers the period's own lines: usage, and the fee when it is charged in arrears
        period_part = worth[:1] + (worth[1:] if case.flat is not None and case.flat[0] == "in_arrears" else [])
        assert rerated == period_part
        invoiced = expected[:1] + (expected[1:] if case.flat is not None and case.flat[0] == "in_arrears" else [])
        difference = sum(period_part) - sum(invoiced)
        assert adjustment == (difference if difference else None)
