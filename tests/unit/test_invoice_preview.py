"""InvoicePreview on the memory stores: a preview at a moment counts the usage up to that moment only, whatever
the clock says now. Amounts are worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.support.meter_events import token_event
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.billing.invoicing.preview import InvoicePreview
from tollway.billing.invoicing.usage import MeteringUsageReader
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import UnitPrice, UsageTerms
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog

D = Decimal
MARCH_1 = datetime(2026, 3, 1, tzinfo=UTC)
AT = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
APRIL_15 = datetime(2026, 4, 15, tzinfo=UTC)


@pytest.fixture
async def preview() -> InvoicePreview:
    clock = FrozenClock(APRIL_15)  # the whole of March, and its later usage, is in the past
    events = MemoryEventStore(clock)
    metering = MeteringService(events, clock)
    await metering.sync_meters([])
    catalog = build_catalog(MemoryCatalogStore(), metering, clock)
    await catalog.features.create_feature(key="output-tokens", meter_slug="llm_tokens", filters={"type": ["output"]})
    card = RateCard(
        key="output-tokens",
        name="Output tokens",
        feature_key="output-tokens",
        usage=UsageTerms(UnitPrice(D("0.01"))),
        billing_cadence="P1M",
    )
    phases = (Phase(key="default", name="Default", rate_cards=(card,)),)
    plan = await catalog.plans.create_plan(key="pay", name="Pay", currency="USD", billing_cadence="P1M", phases=phases)
    await catalog.plans.publish_plan(plan.id)
    await catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-corp"])
    await catalog.subscriptions.create_subscription(
        customer="acme", plan_key="pay", active_from=MARCH_1, billing_anchor=MARCH_1
    )
    await events.insert_events(
        [
            token_event("t1", "acme-corp", datetime(2026, 3, 12, tzinfo=UTC), 800),
            token_event("t2", "acme-corp", AT - timedelta(microseconds=1), 700),  # the last moment before `at`: counted
            token_event("t3", "acme-corp", AT, 40),  # at `at` itself: after the window [period start, at)
            token_event("t4", "acme-corp", datetime(2026, 3, 25, tzinfo=UTC), 300),  # later in the same period
            token_event("t5", "acme-corp", datetime(2026, 4, 2, tzinfo=UTC), 5000),  # the next period
        ]
    )
    await events.roll_up()
    return InvoicePreview(catalog.contexts, MeteringUsageReader(metering), clock)


async def test_a_preview_in_the_past_ignores_the_periods_later_usage(preview: InvoicePreview) -> None:
    invoice = await preview.preview("acme", at=AT)
    assert (invoice.period_start, invoice.period_end) == (MARCH_1, datetime(2026, 4, 1, tzinfo=UTC))
    (line,) = invoice.lines
    # 800 + 700 = 1500 tokens x $0.01 = $15; not the 40 at `at` nor the 300 of March 25 (1840: $18.40)
    assert line.charge is not None
    assert line.charge.quantity == D(1500)
    assert line.amount_minor == 1500
    assert invoice.total_minor == 1500


async def test_a_preview_without_at_counts_the_period_so_far(preview: InvoicePreview) -> None:
    # the clock is April 15: March's invoice is not the one previewed, April's is (5000 x $0.01 = $50)
    invoice = await preview.preview("acme")
    assert invoice.period_start == datetime(2026, 4, 1, tzinfo=UTC)
    assert invoice.total_minor == 5000
    # the whole of March, asked for at its last microsecond: 800 + 700 + 40 + 300 = 1840 -> $18.40
    march = await preview.preview("acme", at=datetime(2026, 4, 1, tzinfo=UTC) - timedelta(microseconds=1))
    assert march.total_minor == 1840
