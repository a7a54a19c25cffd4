"""Events as the composition root wires them (build_services + build_notification_worker) on one database:
thresholds at 50/80/100% and a NUMBER threshold fire exactly once each while usage arrives in bursts and two
workers (two sets of services, as two processes) look at once; a threshold passed before its rule existed
fires at once; a new usage period re-arms them and sends entitlements.reset; each invoice the period close
issues produces exactly one invoice.created, delivered signed to a loopback receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import orjson
import pytest
from standardwebhooks import Webhook

from tests.support.databases import database_url
from tests.support.meter_events import token_event
from tests.support.webhook_receiver import Receiver
from tollway.adapters.stripe.webhooks import StripeWebhooks
from tollway.adapters.stripe.webhooks import sign as stripe_sign
from tollway.api.invoice_codec import invoice_json
from tollway.billing.entitlements import EntitlementTemplate
from tollway.billing.plans import Phase, RateCard
from tollway.billing.pricing.model import FlatPrice, UnitPrice, UsageTerms
from tollway.clock import FrozenClock
from tollway.notifications.model import (
    BALANCE_THRESHOLD,
    ENTITLEMENT_RESET,
    INVOICE_CREATED,
    INVOICE_PAID,
    INVOICE_PAYMENT_FAILED,
    INVOICE_UPDATED,
    SUBSCRIPTION_CANCELED,
    SUBSCRIPTION_CHANGED,
    SUBSCRIPTION_CREATED,
    EventFilter,
    Threshold,
)
from tollway.notifications.service import ChannelInput, RuleInput
from tollway.settings import Settings
from tollway.wiring.billing import build_billing_worker
from tollway.wiring.notifications import build_notification_worker, payment_failed_notice
from tollway.wiring.services import Services, build_services

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
ids = count()


async def open_services(url: str, clock: FrozenClock) -> Services:
    settings = Settings(database_url=url, invoice_grace_s=600, webhook_allow_private=True)
    services = build_services(settings, clock)
    await services.open()
    return services


@pytest.fixture(params=["sqlite", "postgres"])
async def two(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Services, Services]]:
    """Two sets of services (two engines) over one database, sharing a frozen clock."""
    url = database_url(request, tmp_path, "n.db")
    clock = FrozenClock(OCT + timedelta(days=9))
    a = await open_services(url, clock)
    await a.metering.sync_meters([])
    catalog = a.catalog
    await catalog.features.create_feature(key="output-tokens", meter_slug="llm_tokens", filters={"type": ["output"]})
    cards = (
        RateCard(key="platform", name="Platform fee", flat=FlatPrice(Decimal("19.99")), billing_cadence="P1M"),
        RateCard(
            key="output",
            name="Output tokens",
            feature_key="output-tokens",
            usage=UsageTerms(UnitPrice(Decimal("0.000015"))),
            billing_cadence="P1M",
            entitlement=EntitlementTemplate(type="metered", limit=Decimal(1000)),
        ),
    )
    plan = await catalog.plans.create_plan(
        key="basic", name="Basic", currency="USD", billing_cadence="P1M", phases=(Phase("d", "D", cards),)
    )
    await catalog.plans.publish_plan(plan.id)
    await catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-app"])
    await catalog.subscriptions.create_subscription(customer="acme", plan_key="basic", active_from=OCT)
    b = await open_services(url, clock)
    yield a, b
    await b.close()
    await a.close()


async def use(services: Services, tokens: int, at: datetime, n: int = 1) -> None:
    """`n` concurrent batches of one event each (a burst), `tokens` in all."""

    async def one(amount: int) -> None:
        await services.metering.insert([token_event(f"e{next(ids)}", "acme-app", at, amount)])

    await asyncio.gather(*(one(tokens // n) for _ in range(n)))


async def channel_and_rule(services: Services, url: str, rule: RuleInput | Callable[[str], RuleInput]) -> str:
    channel = await services.notifications.create_channel(ChannelInput(name="ops", url=url))
    made = rule(channel.id) if callable(rule) else rule
    await services.notifications.create_rule(made)
    return channel.signing_secret


def thresholds_rule(channel_id: str) -> RuleInput:
    return RuleInput(
        type=BALANCE_THRESHOLD,
        name="tokens",
        channels=(channel_id,),
        features=("output-tokens",),
        thresholds=(
            Threshold(Decimal(50), "PERCENT"),
            Threshold(Decimal(80), "PERCENT"),
            Threshold(Decimal(100), "PERCENT"),
            Threshold(Decimal(900), "NUMBER"),
        ),
    )


def fired(events: list[Any]) -> list[tuple[str, Any]]:
    """(period start, threshold or "reset") of each event, sorted (events of one round share their time)."""
    found = [(e.data["entitlement"]["currentUsagePeriod"]["from"], e.data.get("threshold", "reset")) for e in events]
    return sorted(found, key=str)


async def test_thresholds_fire_once_each_across_two_workers_and_reset_rearms(two: tuple[Services, Services]) -> None:
    a, b = two
    clock = a.clock
    assert isinstance(clock, FrozenClock)
    workers = [build_notification_worker(a), build_notification_worker(b)]
    assert workers[0] is not None
    assert workers[1] is not None
    with Receiver() as receiver:
        secret = await channel_and_rule(a, receiver.url, thresholds_rule)
        reset_rule = await a.notifications.create_rule(
            RuleInput(type=ENTITLEMENT_RESET, name="resets", channels=((await a.notifications.channels())[0].id,))
        )
        assert reset_rule.feature_keys == ()

        async def round_() -> None:
            clock.advance(timedelta(seconds=1))  # events of one round share a time; rounds are ordered
            await asyncio.gather(*(w.detect_once() for w in workers if w is not None))

        await use(a, 400, OCT + timedelta(days=2), n=20)
        await round_()  # 40%: nothing
        await use(b, 450, OCT + timedelta(days=3), n=25)
        await round_()  # 85%: 50 and 80 at once, each once
        await round_()
        await use(a, 60, OCT + timedelta(days=4), n=6)
        await round_()  # 91%: NUMBER 900
        await use(b, 200, OCT + timedelta(days=5), n=50)
        await asyncio.gather(round_(), round_())  # 111%: 100
        events = await a.notifications.events(EventFilter())
        oct_start = "2026-10-01T00:00:00.000Z"
        october = [
            (oct_start, {"value": 50, "type": "PERCENT"}),
            (oct_start, {"value": 80, "type": "PERCENT"}),
            (oct_start, {"value": 900, "type": "NUMBER"}),
            (oct_start, {"value": 100, "type": "PERCENT"}),
        ]
        assert fired(events) == sorted(october, key=str)
        # in the order they were crossed: 50 and 80 in one round, then 900, then 100
        assert [e.data["threshold"]["value"] for e in events[:2]] == [100, 900]
        last = events[0].data
        assert last["value"] == {"hasAccess": True, "balance": "0", "usage": "1110", "overage": "110", "config": None}
        assert (last["feature"]["key"], last["customer"]["key"], last["subject"]) == (
            "output-tokens",
            "acme",
            {"key": "acme-app"},
        )
        assert last["entitlement"]["issueAfterReset"] == "1000"

        # November: a new usage period re-arms the thresholds and is reported once as a reset
        clock.set(NOV + timedelta(days=2))
        await use(a, 550, NOV + timedelta(days=1), n=11)
        await asyncio.gather(round_(), round_())
        nov_start = "2026-11-01T00:00:00.000Z"
        november = [(nov_start, "reset"), (nov_start, {"value": 50, "type": "PERCENT"})]
        assert fired(await a.notifications.events(EventFilter())) == sorted(october + november, key=str)

        # each event delivered once, signed with the channel's secret
        clock.set(datetime.now(UTC))  # (December: only deliver; a round would report December's reset too)
        await asyncio.gather(*(w.delivery.run_once() for w in workers if w is not None))
        got = receiver.snapshot()
        for w in workers:
            if w is not None:
                await w.stop()
    assert len(got) == 6
    assert len({g.headers["webhook-id"] for g in got}) == 6
    for g in got:
        at = datetime.fromtimestamp(int(g.headers["webhook-timestamp"]), UTC)
        assert g.headers["webhook-signature"] == Webhook(secret).sign(g.headers["webhook-id"], at, g.body)
        Webhook(secret).verify(g.body, g.headers)  # the clock was set to now: timestamp within tolerance
    types = sorted(orjson.loads(g.body)["type"] for g in got)
    assert types == [BALANCE_THRESHOLD] * 5 + [ENTITLEMENT_RESET]


async def test_a_threshold_passed_before_the_rule_existed_fires_once_at_once(two: tuple[Services, Services]) -> None:
    a, _ = two
    await use(a, 850, OCT + timedelta(days=2), n=5)
    worker = build_notification_worker(a)
    assert worker is not None
    with Receiver() as receiver:
        await channel_and_rule(a, receiver.url, thresholds_rule)
        await worker.detect_once()
        await worker.detect_once()
        await worker.stop()
    events = await a.notifications.events(EventFilter())
    assert sorted(e.data["threshold"]["value"] for e in events) == [50, 80]


async def test_period_close_issues_one_invoice_created_per_invoice(two: tuple[Services, Services]) -> None:
    a, b = two
    clock = a.clock
    assert isinstance(clock, FrozenClock)
    await use(a, 333, OCT + timedelta(days=3))
    with Receiver() as receiver:
        secret = await channel_and_rule(
            a, receiver.url, lambda c: RuleInput(type=INVOICE_CREATED, name="invoices", channels=(c,))
        )
        clock.set(NOV + timedelta(seconds=600))
        billing = [build_billing_worker(a), build_billing_worker(b)]
        await asyncio.gather(*(w.run_once() for w in billing))
        await asyncio.gather(*(w.run_once() for w in billing))
        workers = [build_notification_worker(a), build_notification_worker(b)]
        await asyncio.gather(*(w.run_once() for w in workers if w is not None))
        await asyncio.gather(*(w.run_once() for w in workers if w is not None))
        got = receiver.snapshot()
        for w in workers:
            if w is not None:
                await w.stop()
    invoices = await a.invoices.list(customer="acme")
    assert [i.status for i in invoices] == ["issued", "issued"]
    delivered = [orjson.loads(g.body) for g in got]
    assert sorted(d["data"]["id"] for d in delivered) == sorted(i.id for i in invoices)  # one each
    assert {d["type"] for d in delivered} == {"invoice.created"}
    by_id = {i.id: i for i in invoices}
    for d, g in zip(delivered, got, strict=True):
        assert d["data"] == orjson.loads(orjson.dumps(invoice_json(by_id[d["data"]["id"]])))  # as the API shows it
        at = datetime.fromtimestamp(int(g.headers["webhook-timestamp"]), UTC)
        assert g.headers["webhook-signature"] == Webhook(secret).sign(g.headers["webhook-id"], at, g.body)


def rule_for(event_type: str) -> Callable[[str], RuleInput]:
    return lambda channel_id: RuleInput(type=event_type, name=event_type, channels=(channel_id,))


@pytest.mark.parametrize("two", ["sqlite"], indirect=True)
async def test_invoice_status_events_and_stripe_payment_failed(two: tuple[Services, Services]) -> None:
    a, _ = two
    clock = a.clock
    assert isinstance(clock, FrozenClock)
    channel = await a.notifications.create_channel(ChannelInput(name="ops", url="http://127.0.0.1:9/"))
    for kind in (INVOICE_CREATED, INVOICE_UPDATED, INVOICE_PAID, INVOICE_PAYMENT_FAILED):
        await a.notifications.create_rule(rule_for(kind)(channel.id))
    clock.set(NOV + timedelta(seconds=600))
    await build_billing_worker(a).run_once()
    opening, closing = await a.invoices.list(customer="acme")
    await a.invoices.mark_paid(opening.id)
    await a.invoices.mark_paid(opening.id)  # already paid: a no-op, nothing notified
    await a.invoices.void(closing.id)
    webhooks = StripeWebhooks(
        secret="whsec_stripe",
        store=a.invoices.store,
        clock=clock,
        notify=True,
        payment_failed=payment_failed_notice(a.notifications),
    )
    body = orjson.dumps(
        {"id": "evt_1", "type": "invoice.payment_failed",
         "data": {"object": {"id": "in_1", "status": "open", "metadata": {"tollway_invoice_id": closing.id}}}}
    )  # fmt: skip
    stamp = int(clock.now().timestamp())
    for _ in range(2):  # Stripe repeats itself: one event
        await webhooks.receive(body, f"t={stamp},v1={stripe_sign(body, 'whsec_stripe', stamp)}")
    worker = build_notification_worker(a)
    assert worker is not None
    await worker.detect_once()
    await worker.detect_once()
    await worker.stop()
    found = sorted((e.type, e.data["id"], e.data["status"]) for e in await a.notifications.events(EventFilter()))
    assert found == sorted(
        [
            ("invoice.created", opening.id, "paid"),  # the invoice as it is when the event is stored
            ("invoice.created", closing.id, "void"),
            ("invoice.updated", opening.id, "paid"),
            ("invoice.paid", opening.id, "paid"),
            ("invoice.updated", closing.id, "void"),
            ("invoice.payment_failed", closing.id, "void"),
        ]
    )


@pytest.mark.parametrize("two", ["sqlite"], indirect=True)
async def test_subscription_events_once_each(two: tuple[Services, Services]) -> None:
    """From the catalog's change journal, written with each subscription write; two workers drain it at once."""
    a, b = two
    clock = a.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(timedelta(minutes=1))  # the rules come after the fixture's subscription
    channel = await a.notifications.create_channel(ChannelInput(name="ops", url="http://127.0.0.1:9/"))
    for kind in (SUBSCRIPTION_CREATED, SUBSCRIPTION_CHANGED, SUBSCRIPTION_CANCELED):
        await a.notifications.create_rule(rule_for(kind)(channel.id))
    worker, other = build_notification_worker(a), build_notification_worker(b)
    assert worker is not None
    assert other is not None
    await worker.detect_once()  # the subscription made before the rules is not replayed
    assert await a.notifications.events(EventFilter()) == []
    clock.advance(timedelta(minutes=1))
    await a.catalog.customers.create_customer(key="globex", name="Globex", subjects=["globex-app"])
    created = await a.catalog.subscriptions.create_subscription(
        customer="globex", plan_key="basic", active_from=clock.now()
    )
    fee = RateCard(key="platform", name="Platform fee", flat=FlatPrice(Decimal("99")), billing_cadence="P1M")
    bigger = await a.catalog.plans.create_plan(
        key="bigger", name="Bigger", currency="USD", billing_cadence="P1M", phases=(Phase("d", "D", (fee,)),)
    )
    await a.catalog.plans.publish_plan(bigger.id)
    (old,) = await a.catalog.subscriptions.subscriptions(customer="acme")
    await a.catalog.subscriptions.change_subscription(old.id, plan_key="bigger")
    await a.catalog.subscriptions.cancel_subscription(created.id)
    for _ in range(2):
        await asyncio.gather(worker.detect_once(), other.detect_once())
    await worker.stop()
    await other.stop()
    assert await a.catalog.store.pending_subscription_changes() == []
    found = sorted(
        (e.type, e.data.get("id") or e.data["from"]["id"]) for e in await a.notifications.events(EventFilter())
    )
    assert found == sorted(
        [
            ("subscription.created", created.id),
            ("subscription.canceled", created.id),
            ("subscription.changed", old.id),
        ]
    )
