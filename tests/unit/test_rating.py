"""Rating: invoices computed by hand for every price model, flat fees in advance and in arrears, proration,
cancellation credits, late-usage adjustments and rounding once per line."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from tollway.billing.customers import Customer
from tollway.billing.features import Feature
from tollway.billing.invoicing.lines import adjustment_line, advance_invoiced, invoiced_for_period
from tollway.billing.invoicing.model import InvoiceLine, UsageSlice
from tollway.billing.invoicing.rating import rate_closing_invoice, rate_opening_invoice, rerate_period
from tollway.billing.invoicing.usage import MeteredUsage
from tollway.billing.plans import Phase, Plan, RateCard
from tollway.billing.pricing.model import (
    DynamicPrice,
    FlatPrice,
    PackagePrice,
    Tier,
    TieredPrice,
    UnitPrice,
    UsageTerms,
)
from tollway.billing.subscriptions import Subscription

D = Decimal


def at(day: int, month: int = 3, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


MARCH_1 = at(1)
APRIL_1 = at(1, 4)


@dataclass
class FakeReader:
    """Usage from a list of raw records (feature key, time, quantity, model); counts the reads."""

    records: list[tuple[str, datetime, Decimal, str]] = field(default_factory=list)
    reads: list[tuple[str, datetime, datetime]] = field(default_factory=list)

    async def read(self, feature: Feature, subjects: Sequence[str], start: datetime, end: datetime) -> MeteredUsage:
        self.reads.append((feature.key, start, end))
        by_model: dict[str, Decimal] = {}
        for key, moment, quantity, model in self.records:
            if key == feature.key and start <= moment < end:
                by_model[model] = by_model.get(model, D(0)) + quantity
        return MeteredUsage(
            sum(by_model.values(), D(0)),
            tuple(UsageSlice({"model": m}, q) for m, q in sorted(by_model.items())),
        )


FEATURES = {
    "output-tokens": Feature(
        id="f1", key="output-tokens", name="output tokens", meter_slug="llm_tokens", filters={"type": ("output",)}
    ),
    "input-tokens": Feature(
        id="f2", key="input-tokens", name="input tokens", meter_slug="llm_tokens", filters={"type": ("input",)}
    ),
    "provider-cost": Feature(id="f3", key="provider-cost", name="provider cost", meter_slug="llm_cost"),
}
CUSTOMER = Customer(id="c1", key="acme", name="Acme", subjects=("acme-corp",))


def usage_card(key: str, feature: str, terms: UsageTerms) -> RateCard:
    return RateCard(key=key, name=key, feature_key=feature, usage=terms, billing_cadence="P1M")


def fee(key: str, amount: str, term: str = "in_advance", cadence: str | None = "P1M") -> RateCard:
    price = FlatPrice(amount=D(amount), payment_term="in_advance" if term == "in_advance" else "in_arrears")
    return RateCard(key=key, name=key.replace("-", " ").capitalize(), flat=price, billing_cadence=cadence)


def plan(*cards: RateCard, currency: str = "USD") -> Plan:
    return Plan(
        id="p1",
        key="pro",
        version=1,
        name="Pro",
        currency=currency,
        billing_cadence="P1M",
        phases=(Phase(key="default", name="Default", rate_cards=cards),),
        status="published",
    )


def subscription(
    active_from: datetime = MARCH_1,
    active_to: datetime | None = None,
    anchor: datetime = MARCH_1,
    currency: str = "USD",
) -> Subscription:
    return Subscription(
        id="s1",
        customer_id="c1",
        plan_id="p1",
        plan_key="pro",
        plan_version=1,
        currency=currency,
        billing_cadence="P1M",
        billing_anchor=anchor,
        active_from=active_from,
        active_to=active_to,
    )


def close(
    the_plan: Plan,
    reader: FakeReader,
    sub: Subscription | None = None,
    *,
    start: datetime = MARCH_1,
    end: datetime = APRIL_1,
    customer: Customer = CUSTOMER,
    advance_charged: dict[str, Decimal] | None = None,
    usage_until: datetime | None = None,
) -> list[InvoiceLine]:
    return asyncio.run(
        rate_closing_invoice(
            subscription=sub or subscription(currency=the_plan.currency),
            plan=the_plan,
            customer=customer,
            period_start=start,
            period_end=end,
            usage_until=usage_until,
            reader=reader,
            features=FEATURES,
            advance_charged=advance_charged,
        )
    )


def tokens(feature: str, *quantities: int, day: int = 10, model: str = "gpt-4o") -> list[tuple[str, datetime, D, str]]:
    return [(feature, at(day), D(q), model) for q in quantities]


# -- price models ------------------------------------------------------------------------------------


def test_unit_price_line_with_model_slices() -> None:
    reader = FakeReader(
        tokens("output-tokens", 1_000_000, model="gpt-4o") + tokens("output-tokens", 234_567, model="gpt-4o-mini")
    )
    lines = close(plan(usage_card("out", "output-tokens", UsageTerms(UnitPrice(D("0.00001"))))), reader)
    (line,) = lines
    # 1,234,567 x 0.00001 = 12.34567 -> $12.35
    assert line.kind == "usage"
    assert line.amount == D("12.34567")
    assert line.amount_minor == 1235
    assert line.description == "1,234,567 output tokens x $0.00001"
    assert line.slices == (
        UsageSlice({"model": "gpt-4o"}, D(1_000_000)),
        UsageSlice({"model": "gpt-4o-mini"}, D(234_567)),
    )
    assert (line.period_start, line.period_end) == (at(1), at(1, 4))
    assert line.metadata["rating"] == "period"


def test_graduated_tiers_with_free_quantity_discount_and_minimum() -> None:
    tiers = TieredPrice(
        "graduated", (Tier(up_to=D(1_000_000), unit_price=D("0.00001")), Tier(up_to=None, unit_price=D("0.000008")))
    )
    terms = UsageTerms(tiers, free_quantity=D(100_000), discount_percentage=D(10), minimum_amount=D(10))
    reader = FakeReader(tokens("output-tokens", 1_500_000))
    (line,) = close(plan(usage_card("out", "output-tokens", terms)), reader)
    # billable 1,400,000: 1,000,000 x 0.00001 = 10 + 400,000 x 0.000008 = 3.2 -> 13.2; -10% 1.32 -> 11.88
    assert line.amount == D("11.88")
    assert line.amount_minor == 1188
    assert line.charge is not None
    assert line.charge.billable_quantity == D(1_400_000)
    assert [t.amount for t in line.charge.tiers] == [D(10), D("3.2")]
    assert line.description == "1,500,000 output tokens (graduated tiers)"

    # Small usage: 150,000 - 100,000 free = 50,000 x 0.00001 = 0.5, -10% = 0.45 -> topped up to the minimum 10
    (small,) = close(plan(usage_card("out", "output-tokens", terms)), FakeReader(tokens("output-tokens", 150_000)))
    assert small.amount == D(10)
    assert small.amount_minor == 1000
    assert small.charge is not None
    assert small.charge.minimum_top_up == D("9.55")


def test_volume_tiers_and_zero_usage_pays_the_first_tier_flat_price() -> None:
    tiers = TieredPrice(
        "volume",
        (
            Tier(up_to=D(1000), unit_price=D("0.01"), flat_price=D(5)),
            Tier(up_to=None, unit_price=D("0.008"), flat_price=D(2)),
        ),
    )
    the_plan = plan(usage_card("req", "input-tokens", UsageTerms(tiers)))
    (line,) = close(the_plan, FakeReader(tokens("input-tokens", 1500)))
    # all 1500 at tier 2: 1500 x 0.008 = 12 + flat 2 = 14
    assert (line.amount, line.amount_minor) == (D(14), 1400)
    assert line.description == "1,500 input tokens x $0.008 (volume tier 2)"
    (empty,) = close(the_plan, FakeReader())
    assert (empty.amount, empty.amount_minor) == (D(5), 500)


def test_package_price_counts_started_packages() -> None:
    terms = UsageTerms(PackagePrice(amount=D(1), quantity_per_package=D(100_000)))
    (line,) = close(plan(usage_card("in", "input-tokens", terms)), FakeReader(tokens("input-tokens", 250_001)))
    assert (line.amount, line.amount_minor) == (D(3), 300)
    assert line.description == "250,001 input tokens: 3 x $1 per 100,000"


def test_dynamic_price_is_provider_cost_times_multiplier() -> None:
    terms = UsageTerms(DynamicPrice(multiplier=D("1.3")))
    reader = FakeReader([("provider-cost", at(5), D("12.345"), "gpt-4o")])
    (line,) = close(plan(usage_card("cost", "provider-cost", terms)), reader)
    # 12.345 x 1.3 = 16.0485 -> $16.05
    assert (line.amount, line.amount_minor) == (D("16.0485"), 1605)
    assert line.description == "$12.345 provider cost x 1.3"


def test_maximum_spend_caps_the_line() -> None:
    terms = UsageTerms(UnitPrice(D("0.01")), maximum_amount=D(50))
    (line,) = close(plan(usage_card("out", "output-tokens", terms)), FakeReader(tokens("output-tokens", 10_000)))
    assert (line.amount, line.amount_minor) == (D(50), 5000)
    assert line.charge is not None
    assert line.charge.maximum_cut == D(50)


# -- rounding ------------------------------------------------------------------------------------------


def test_many_tiny_events_round_once_on_the_sum() -> None:
    # 1000 events of 7 tokens at $0.000001: each worth 0.0007 cents (0 if rounded alone); together $0.007 -> 1 cent
    reader = FakeReader(tokens("output-tokens", *([7] * 1000)))
    (line,) = close(plan(usage_card("out", "output-tokens", UsageTerms(UnitPrice(D("0.000001"))))), reader)
    assert line.amount == D("0.007")
    assert line.amount_minor == 1


def test_each_line_rounds_and_the_total_sums_rounded_lines() -> None:
    # two lines of $0.005 each round to 1 cent each (half away from zero): 2 cents, not round(0.01) = 1
    the_plan = plan(
        usage_card("in", "input-tokens", UsageTerms(UnitPrice(D("0.001")))),
        usage_card("out", "output-tokens", UsageTerms(UnitPrice(D("0.001")))),
    )
    reader = FakeReader(tokens("input-tokens", 5) + tokens("output-tokens", 5))
    lines = close(the_plan, reader)
    assert [line.amount_minor for line in lines] == [1, 1]
    assert sum(line.amount_minor for line in lines) == 2


def test_currency_minor_units_jpy_and_kwd() -> None:
    card = usage_card("out", "output-tokens", UsageTerms(UnitPrice(D("0.0125"))))
    reader = FakeReader(tokens("output-tokens", 1000))  # 12.5
    (jpy,) = close(plan(card, currency="JPY"), reader)
    assert jpy.amount_minor == 13  # ¥12.5 -> ¥13
    reader = FakeReader(tokens("output-tokens", 1))  # 0.0125 KWD -> 0.013
    (kwd,) = close(plan(card, currency="KWD"), reader)
    assert kwd.amount_minor == 13


# -- flat fees, proration ------------------------------------------------------------------------------------


def test_opening_invoice_prorates_in_advance_fee_for_a_mid_period_start() -> None:
    the_plan = plan(fee("platform-fee", "49"), fee("setup", "100", cadence=None), fee("support", "31", "in_arrears"))
    sub = subscription(active_from=at(11), anchor=at(1))
    lines = asyncio.run(rate_opening_invoice(subscription=sub, plan=the_plan))
    assert [line.rate_card_key for line in lines] == ["platform-fee", "setup"]
    platform, setup = lines
    # March 11 -> April 1 is 21 of March's 31 days: 49 x 21 / 31 = 33.1935... -> $33.19
    assert platform.amount_minor == 3319
    assert platform.proration is not None
    assert abs(platform.proration - D(21) / D(31)) < D("1e-20")
    assert (platform.period_start, platform.period_end) == (at(11), at(1, 4))
    assert (setup.amount, setup.amount_minor, setup.proration) == (D(100), 10000, None)


def test_closing_invoice_after_a_mid_period_start() -> None:
    the_plan = plan(
        usage_card("out", "output-tokens", UsageTerms(UnitPrice(D("0.00001")))),
        fee("platform-fee", "49"),
        fee("support", "31", "in_arrears"),
        fee("onboarding", "20", "in_arrears", cadence=None),
    )
    sub = subscription(active_from=at(11), anchor=at(1))
    # usage before the start is not billed
    reader = FakeReader(tokens("output-tokens", 500_000, day=5) + tokens("output-tokens", 300_000, day=20))
    lines = close(the_plan, reader, sub)
    by_key = {line.rate_card_key: line for line in lines}
    assert list(by_key) == ["out", "support", "onboarding", "platform-fee"]
    assert by_key["out"].amount_minor == 300  # 300,000 x 0.00001 = $3
    assert reader.reads == [("output-tokens", at(11), at(1, 4))]
    # in arrears, 21 of 31 days: 31 x 21/31 = $21
    assert by_key["support"].amount_minor == 2100
    assert by_key["onboarding"].amount_minor == 2000  # one-time, first closing invoice, not prorated
    # next period (April) in advance, whole
    advance = by_key["platform-fee"]
    assert (advance.amount, advance.amount_minor) == (D(49), 4900)
    assert (advance.period_start, advance.period_end) == (at(1, 4), at(1, 5))
    assert advance.metadata["rating"] == "advance"
    assert sum(line.amount_minor for line in lines) == 300 + 2100 + 2000 + 4900

    # the second period: no one-time fee again
    april = close(the_plan, FakeReader(), sub, start=at(1, 4), end=at(1, 5))
    assert [line.rate_card_key for line in april] == ["out", "support", "platform-fee"]
    assert [line.amount_minor for line in april] == [0, 3100, 4900]


def test_cancellation_credits_the_unused_part_of_the_advance_fee() -> None:
    the_plan = plan(fee("platform-fee", "49"), fee("support", "30", "in_arrears"))
    # cancelled to end on April 16, after April's fee was charged in full on March's invoice
    sub = subscription(active_to=at(16, 4))
    lines = close(the_plan, FakeReader(), sub, start=at(1, 4), end=at(16, 4))
    assert [(line.rate_card_key, line.metadata["rating"]) for line in lines] == [
        ("support", "period"),
        ("platform-fee", "credit"),
    ]
    support, credit = lines
    assert support.amount_minor == 1500  # 15 of April's 30 days of $30
    assert (support.period_start, support.period_end) == (at(1, 4), at(16, 4))
    # 15 unused days of 30: -49 x 15/30 = -24.5
    assert (credit.amount, credit.amount_minor) == (D("-24.5"), -2450)
    assert (credit.period_start, credit.period_end) == (at(16, 4), at(1, 5))
    assert credit.kind == "flat"

    # when April's fee was already charged prorated (the end was known), nothing to credit
    charged = advance_invoiced(
        [
            InvoiceLine(
                kind="flat",
                rate_card_key="platform-fee",
                description="",
                period_start=at(1, 4),
                period_end=at(16, 4),
                amount=D("24.5"),
                amount_minor=2450,
                metadata={"rating": "advance", "payment_term": "in_advance"},
            )
        ],
        at(1, 4),
        at(1, 5),
    )
    assert charged == {"platform-fee": D("24.5")}
    lines = close(the_plan, FakeReader(), sub, start=at(1, 4), end=at(16, 4), advance_charged=charged)
    assert [line.rate_card_key for line in lines] == ["support"]


def test_known_end_prorates_the_next_periods_advance_fee() -> None:
    the_plan = plan(fee("platform-fee", "60"))
    sub = subscription(active_to=at(11, 4))  # April 1 -> 11 is 10 of 30 days
    (advance,) = close(the_plan, FakeReader(), sub)
    assert (advance.period_start, advance.period_end) == (at(1, 4), at(11, 4))
    assert (advance.amount, advance.amount_minor) == (D(20), 2000)


def test_plan_change_mid_period_splits_flat_fees() -> None:
    old_plan = plan(fee("platform-fee", "31"), fee("support", "62", "in_arrears"))
    old = subscription(active_to=at(17))  # ends March 17: 16 of 31 days served
    lines = close(old_plan, FakeReader(), old, start=at(1), end=at(17))
    assert [(line.rate_card_key, line.amount_minor) for line in lines] == [
        ("support", 3200),  # 62 x 16/31 = 32
        ("platform-fee", -1500),  # 31 x 15/31 = 15 back
    ]
    new_plan = plan(fee("platform-fee", "93"))
    new = subscription(active_from=at(17), anchor=at(1))
    (opening,) = asyncio.run(rate_opening_invoice(subscription=new, plan=new_plan))
    assert (opening.period_start, opening.period_end, opening.amount_minor) == (at(17), at(1, 4), 4500)  # 93 x 15/31


# Proration is by exact duration, to the microsecond, not by whole days: windows that start or end within a day.


@pytest.mark.parametrize(
    ("active_from", "served", "amount_minor"),
    [
        # March 11 06:00 -> April 1: 20 days 18 hours = 498 of March's 744 hours: 49 x 498/744 = 32.798... -> $32.80
        # (by whole days, 20/31, it would be $31.61)
        (at(11, hour=6), Fraction(498, 744), 3280),
        # March 11 00:30 -> April 1: 30,210 of 44,640 minutes: 49 x 30210/44640 = 33.160... -> $33.16
        (datetime(2026, 3, 11, 0, 30, tzinfo=UTC), Fraction(30210, 44640), 3316),
        # March 31 23:59 -> April 1: one minute of 44,640: 49/44640 = 0.0010976... -> $0.00 (whole days: 0 of 31)
        (datetime(2026, 3, 31, 23, 59, tzinfo=UTC), Fraction(1, 44640), 0),
        # March 31 12:00 -> April 1: half a day of 31: 49 x 12/744 = 0.790... -> $0.79
        (at(31, hour=12), Fraction(12, 744), 79),
    ],
)
def test_opening_fee_prorated_over_hours_and_minutes(
    active_from: datetime, served: Fraction, amount_minor: int
) -> None:
    sub = subscription(active_from=active_from, anchor=MARCH_1)
    (line,) = asyncio.run(rate_opening_invoice(subscription=sub, plan=plan(fee("platform-fee", "49"))))
    assert (line.period_start, line.period_end) == (active_from, APRIL_1)
    assert line.proration is not None
    assert abs(Fraction(line.proration) - served) < Fraction(1, 10**50)
    assert line.amount_minor == amount_minor


def test_cancellation_at_noon_prorates_both_fees_by_the_half_day() -> None:
    the_plan = plan(fee("platform-fee", "49"), fee("support", "30", "in_arrears"))
    sub = subscription(active_to=at(16, 4, hour=12))  # April 1 -> 16 12:00: 15.5 of April's 30 days served
    lines = close(the_plan, FakeReader(), sub, start=at(1, 4), end=at(16, 4, hour=12))
    assert [(line.rate_card_key, line.amount_minor) for line in lines] == [
        ("support", 1550),  # 30 x 15.5/30 = 15.5 (whole days: 15)
        ("platform-fee", -2368),  # 14.5 unused days: -49 x 14.5/30 = -23.683... -> -$23.68 (whole days: -22.87)
    ]


def test_a_new_york_anchor_prorates_by_the_hours_across_the_dst_change() -> None:
    # A subscription anchored at midnight in New York (EST, 05:00 UTC) starts at midnight on March 11 (EDT since
    # March 8: 04:00 UTC). Periods are exact durations from the anchor's instant: March's runs 05:00 UTC March 1
    # to 05:00 UTC April 1 (744 hours); the start is 21 days and 1 hour before its end: 505 of 744 hours.
    new_york = ZoneInfo("America/New_York")
    anchor = datetime(2026, 3, 1, tzinfo=new_york)
    start = datetime(2026, 3, 11, tzinfo=new_york)
    assert (anchor.utcoffset(), start.utcoffset()) == (timedelta(hours=-5), timedelta(hours=-4))
    sub = subscription(active_from=start, anchor=anchor)
    (line,) = asyncio.run(rate_opening_invoice(subscription=sub, plan=plan(fee("platform-fee", "49"))))
    assert (line.period_start, line.period_end) == (at(11, hour=4), at(1, 4, hour=5))
    assert line.proration is not None
    assert abs(Fraction(line.proration) - Fraction(505, 744)) < Fraction(1, 10**50)
    # 49 x 505/744 = 33.259... -> $33.26 (whole days, 21/31: $33.19)
    assert line.amount_minor == 3326


def test_customer_without_subjects_has_no_usage() -> None:
    reader = FakeReader(tokens("output-tokens", 1000))
    nobody = Customer(id="c2", key="nobody", name="Nobody")
    (line,) = close(plan(usage_card("out", "output-tokens", UsageTerms(UnitPrice(D(1))))), reader, customer=nobody)
    assert line.amount_minor == 0
    assert reader.reads == []


def test_usage_until_cuts_the_usage_window_for_a_preview() -> None:
    reader = FakeReader(tokens("output-tokens", 100, day=5) + tokens("output-tokens", 900, day=20))
    (line,) = close(plan(usage_card("out", "output-tokens", UsageTerms(UnitPrice(D(1))))), reader, usage_until=at(10))
    assert line.amount_minor == 10000
    assert reader.reads == [("output-tokens", at(1), at(10))]


# -- late usage -----------------------------------------------------------------------------------------------


def test_late_usage_on_a_volume_tier_gives_a_negative_adjustment() -> None:
    tiers = TieredPrice("volume", (Tier(up_to=D(1000), unit_price=D("0.01")), Tier(up_to=None, unit_price=D("0.005"))))
    the_plan = plan(usage_card("req", "input-tokens", UsageTerms(tiers)), fee("support", "10", "in_arrears"))
    reader = FakeReader(tokens("input-tokens", 900))
    issued = close(the_plan, reader)
    assert [line.amount_minor for line in issued] == [900, 1000]  # 900 x 0.01; support
    reader.records += tokens("input-tokens", 200, day=30)  # arrives after the invoice was issued
    rated = asyncio.run(
        rerate_period(
            subscription=subscription(),
            plan=the_plan,
            customer=CUSTOMER,
            period_start=at(1),
            period_end=at(1, 4),
            reader=reader,
            features=FEATURES,
        )
    )
    assert rated.amount_minor == 550 + 1000  # 1100 x 0.005 + support
    invoiced = invoiced_for_period(issued)
    assert invoiced == 1900
    line = adjustment_line(
        rated=rated,
        invoiced_minor=invoiced,
        currency="USD",
        period_start=at(1),
        period_end=at(1, 4),
        adjusts_invoice_id="inv1",
        adjusts_invoice_number="TW-2026-000001",
    )
    assert line is not None
    assert (line.kind, line.amount, line.amount_minor, line.adjusts_invoice_id) == (
        "adjustment",
        D("-3.5"),
        -350,
        "inv1",
    )
    assert (line.period_start, line.period_end) == (at(1), at(1, 4))
    assert "TW-2026-000001" in line.description
    # once that adjustment is invoiced, re-rating again changes nothing
    assert invoiced_for_period(issued, [line]) == rated.amount_minor
    again = adjustment_line(
        rated=rated,
        invoiced_minor=invoiced_for_period(issued, [line]),
        currency="USD",
        period_start=at(1),
        period_end=at(1, 4),
        adjusts_invoice_id="inv1",
    )
    assert again is None


def test_invoiced_for_period_ignores_advance_and_credit_lines() -> None:
    the_plan = plan(usage_card("out", "output-tokens", UsageTerms(UnitPrice(D(1)))), fee("platform-fee", "49"))
    lines = close(the_plan, FakeReader(tokens("output-tokens", 3)))
    assert [line.amount_minor for line in lines] == [300, 4900]
    assert invoiced_for_period(lines) == 300


def test_unknown_feature_is_a_clear_error() -> None:
    from tollway.errors import NotFoundError

    with pytest.raises(NotFoundError, match="missing"):
        close(plan(usage_card("x", "missing", UsageTerms(UnitPrice(D(1))))), FakeReader())


def test_empty_window_has_no_lines() -> None:
    sub = subscription(active_from=at(1, 5))
    assert close(plan(fee("platform-fee", "49")), FakeReader(), sub) == []
