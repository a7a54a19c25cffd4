"""credits.topup, credits.expiring and credits.balance.low as the composition root wires them (build_services +
build_notification_worker, SQLite, a frozen clock), two workers looking each round: a bought grant's activation
is one topup (a promotional grant, and one funded before the rule, none); an expiring grant is reported once at
each of the rule's days before its expiry; the live balance going below a threshold is reported once per
crossing, re-armed by a funding; rules refuse thresholds that mean nothing for their type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tollway.billing.credit_accounts.service import NewGrant
from tollway.clock import FrozenClock
from tollway.errors import ValidationError
from tollway.notifications.model import (
    CREDITS_BALANCE_LOW,
    CREDITS_EXPIRING,
    CREDITS_TOPUP,
    Event,
    EventFilter,
    Threshold,
)
from tollway.notifications.service import ChannelInput, RuleInput
from tollway.settings import Settings
from tollway.wiring.notifications import build_notification_worker
from tollway.wiring.services import Services, build_services

T0 = datetime(2026, 10, 10, tzinfo=UTC)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    clock = FrozenClock(T0 - timedelta(hours=1))
    found = build_services(Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}"), clock)
    await found.open()
    await found.catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-app"], currency="USD")
    yield found
    await found.close()


def grant(name: str, amount: str, funding: str, expires_after: str | None = None) -> NewGrant:
    return NewGrant(name=name, amount=Decimal(amount), funding_method=funding, expires_after=expires_after)  # type: ignore[arg-type]


def what(event: Event) -> tuple[str, str]:
    data, kind = event.data, event.type
    if kind == CREDITS_BALANCE_LOW:
        return kind, f"live {data['balance']['live']} < {data['threshold']['value']}"
    if kind == CREDITS_EXPIRING:
        return kind, f"{data['grant']['name']} in {data['daysBefore']}d"
    return kind, data["grant"]["name"]


async def test_credit_events_once_each(services: Services) -> None:
    clock = services.clock
    assert isinstance(clock, FrozenClock)
    credits = services.credits
    await credits.create("acme", grant("Early", "1", "external"))  # funded before the rules: no topup
    clock.set(T0)
    notifications = services.notifications
    channel = await notifications.create_channel(ChannelInput(name="ops", url="https://93.184.215.14/hook"))
    channels = (channel.id,)
    await notifications.create_rule(RuleInput(type=CREDITS_TOPUP, name="topup", channels=channels))
    days = (Threshold(Decimal(7), "NUMBER"), Threshold(Decimal(1), "NUMBER"))
    await notifications.create_rule(RuleInput(type=CREDITS_EXPIRING, name="exp", channels=channels, thresholds=days))
    low = (Threshold(Decimal(20), "NUMBER"),)
    await notifications.create_rule(RuleInput(type=CREDITS_BALANCE_LOW, name="low", channels=channels, thresholds=low))
    found = [build_notification_worker(services), build_notification_worker(services)]
    workers = [w for w in found if w is not None]
    assert len(workers) == 2

    seen: list[tuple[str, str]] = []

    async def events() -> list[tuple[str, str]]:
        """What the workers' rounds stored since the last look (sorted: one round's events share their time)."""
        for _ in range(2):
            for worker in workers:
                await worker.detect_once()
        listed = [what(e) for e in await notifications.events(EventFilter())]
        for old in seen:
            listed.remove(old)
        seen.extend(listed)
        return sorted(listed)

    await credits.create("acme", grant("Promo", "10", "none", expires_after="P10D"))  # expires 10-20
    await credits.create("acme", grant("Bought", "20", "external"))
    pending, _ = await credits.create("acme", grant("Invoiced", "5", "invoice"))
    assert await events() == [(CREDITS_TOPUP, "Bought")]  # live 31: not low; Promo expires in 10 days
    (topup,) = await notifications.events(EventFilter())
    assert topup.data["grant"]["amount"] == "20"
    assert topup.data["grant"]["fundingMethod"] == "external"
    assert topup.data["grant"]["status"] == "active"
    assert topup.data["balance"] == "20"
    assert topup.data["customer"]["key"] == "acme"
    assert topup.subject_key == "acme-app"

    clock.set(datetime(2026, 10, 13, 0, 0, 1, tzinfo=UTC))  # Promo: 6 days 23:59:59 left
    await credits.activate(pending.id)
    assert await events() == [(CREDITS_EXPIRING, "Promo in 7d"), (CREDITS_TOPUP, "Invoiced")]

    bought = next(g for g in await credits.grants("acme") if g.name == "Bought")
    await credits.void("acme", bought.id)  # live 36 -> 16: below 20
    assert await events() == [(CREDITS_BALANCE_LOW, "live 16 < 20")]
    (low_event,) = [e for e in await notifications.events(EventFilter()) if e.type == CREDITS_BALANCE_LOW]
    assert low_event.data["balance"]["settled"] == "16"
    assert low_event.data["threshold"] == {"value": 20, "type": "NUMBER", "currency": "USD"}

    clock.advance(timedelta(hours=1))
    await credits.create("acme", grant("Top-up", "2", "external"))  # a funding re-arms: 18, still below
    assert await events() == [(CREDITS_BALANCE_LOW, "live 18 < 20"), (CREDITS_TOPUP, "Top-up")]

    clock.set(datetime(2026, 10, 19, 0, 0, 1, tzinfo=UTC))
    assert await events() == [(CREDITS_EXPIRING, "Promo in 1d")]
    clock.set(datetime(2026, 10, 21, tzinfo=UTC))  # expired: nothing more
    assert await events() == []
    assert len(seen) == 7
    for worker in workers:
        await worker.stop()


async def test_credit_rules_refuse_thresholds_that_mean_nothing(services: Services) -> None:
    notifications = services.notifications
    channel = await notifications.create_channel(ChannelInput(name="ops", url="https://93.184.215.14/hook"))
    channels = (channel.id,)
    cases = [
        (CREDITS_BALANCE_LOW, (), "thresholds"),
        (CREDITS_BALANCE_LOW, (Threshold(Decimal(50), "PERCENT"),), "thresholds[0].type"),
        (CREDITS_EXPIRING, (Threshold(Decimal(7), "PERCENT"),), "thresholds[0].type"),
        (CREDITS_EXPIRING, (Threshold(Decimal("1.5"), "NUMBER"),), "thresholds[0].value"),
        (CREDITS_EXPIRING, (Threshold(Decimal(0), "NUMBER"),), "thresholds[0].value"),
        (CREDITS_TOPUP, (Threshold(Decimal(1), "NUMBER"),), "thresholds"),
    ]
    for kind, thresholds, field in cases:
        with pytest.raises(ValidationError) as refused:
            await notifications.create_rule(RuleInput(type=kind, name="r", channels=channels, thresholds=thresholds))
        assert refused.value.field == field, (kind, thresholds)
    made = await notifications.create_rule(RuleInput(type=CREDITS_EXPIRING, name="default", channels=channels))
    assert made.thresholds == ()
