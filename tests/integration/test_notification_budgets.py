"""budget.threshold and budget.exceeded as the composition root wires them (build_services +
build_notification_worker): a customer's token budget crossed by stored usage fires each threshold once per
window while two workers (two sets of services over one database, as two processes) look at once; a new window
re-arms them; budget.exceeded comes once per window, from the use reaching the limit or from a refusal at the
hard budget handed over by the gateway's refusal hook; deliveries signed as the standardwebhooks library signs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import orjson
import pytest
from standardwebhooks import Webhook

from tests.support.meter_events import token_event
from tests.support.webhook_receiver import Receiver
from tollway.clock import FrozenClock
from tollway.errors import LimitExceededError
from tollway.gateway.hooks import Admit, Reservation
from tollway.gateway.refusals import NoticeRefusals
from tollway.notifications.model import BUDGET_EXCEEDED, BUDGET_THRESHOLD, EventFilter, Threshold
from tollway.notifications.service import ChannelInput, RuleInput
from tollway.notifications.worker import NotificationWorker
from tollway.settings import Settings
from tollway.wiring.notifications import build_notification_worker
from tollway.wiring.services import Services, build_services

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
ids = count()


async def open_services(url: str, clock: FrozenClock) -> Services:
    services = build_services(Settings(database_url=url, webhook_allow_private=True), clock)
    await services.open()
    return services


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[Services, Services]]:
    """Two sets of services (two engines) over one SQLite database, sharing a frozen clock; a customer with a
    hard token budget of 1000 a month."""
    url = f"sqlite:///{tmp_path / 'b.db'}"
    clock = FrozenClock(OCT + timedelta(days=9))
    a = await open_services(url, clock)
    await a.metering.sync_meters([])
    await a.catalog.customers.create_customer(key="acme", name="Acme", subjects=["acme-app"])
    await a.budgets.create(
        key="acme-tokens", scope="customer", target="acme", kind="tokens", limit="1000", window="month"
    )
    b = await open_services(url, clock)
    yield a, b
    await b.close()
    await a.close()


async def use(services: Services, tokens: int, at: datetime) -> None:
    """`tokens` used a second before `at` (usage counts up to, not including, the moment it is read at)."""
    at -= timedelta(seconds=1)
    await services.metering.insert([token_event(f"b{next(ids)}", "acme-app", at, tokens)])


def workers(*services: Services) -> list[NotificationWorker]:
    found = [build_notification_worker(s) for s in services]
    assert all(w is not None for w in found)
    return [w for w in found if w is not None]


async def rounds(found: list[NotificationWorker]) -> None:
    for worker in found:
        await worker.detect_once()


def fired(events: list[Any]) -> list[tuple[str, str, str]]:
    """(window start, type, threshold value or the exceeded cause) of each event, sorted."""
    return sorted(
        (
            e.data["budget"]["windowStart"],
            e.type,
            str(e.data["threshold"]["value"]) if e.type == BUDGET_THRESHOLD else e.data["cause"],
        )
        for e in events
    )


async def test_budget_thresholds_fire_once_per_window_across_two_workers(two: tuple[Services, Services]) -> None:
    a, b = two
    clock = a.clock
    assert isinstance(clock, FrozenClock)
    both = workers(a, b)
    with Receiver() as receiver:
        channel = await a.notifications.create_channel(ChannelInput(name="ops", url=receiver.url))
        receiver.secret = channel.signing_secret
        thresholds = (
            Threshold(Decimal(50), "PERCENT"),
            Threshold(Decimal(80), "PERCENT"),
            Threshold(Decimal(100), "PERCENT"),
            Threshold(Decimal(900), "NUMBER"),
        )
        await a.notifications.create_rule(
            RuleInput(type=BUDGET_THRESHOLD, name="budget", channels=(channel.id,), thresholds=thresholds)
        )
        await a.notifications.create_rule(RuleInput(type=BUDGET_EXCEEDED, name="over", channels=(channel.id,)))
        now = clock.now()
        await rounds(both)
        assert await a.notifications.events(EventFilter()) == []
        await use(a, 499, now)
        await rounds(both)
        assert await a.notifications.events(EventFilter()) == []  # 49.9%
        await use(b, 1, now)
        await rounds(both)
        await rounds(both)
        await use(a, 400, now)  # 900: 80% and the NUMBER 900 at once
        await rounds(both)
        await use(b, 99, now)  # 999
        await rounds(both)
        await use(a, 1, now)  # 1000: 100%, and the budget is used up
        await rounds(both)
        await rounds(both)
        october = "2026-10-01T00:00:00.000Z"
        assert fired(await a.notifications.events(EventFilter())) == [
            (october, BUDGET_EXCEEDED, "used"),
            (october, BUDGET_THRESHOLD, "100"),
            (october, BUDGET_THRESHOLD, "50"),
            (october, BUDGET_THRESHOLD, "80"),
            (october, BUDGET_THRESHOLD, "900"),
        ]
        clock.set(NOV + timedelta(hours=1))  # a new window: re-armed
        await rounds(both)
        await use(b, 850, clock.now())
        await rounds(both)
        await rounds(both)
        events = await a.notifications.events(EventFilter())
        november = "2026-11-01T00:00:00.000Z"
        assert [f for f in fired(events) if f[0] == november] == [
            (november, BUDGET_THRESHOLD, "50"),
            (november, BUDGET_THRESHOLD, "80"),
        ]
        for worker in both:
            await worker.run_once()
            await worker.stop()
        got = receiver.snapshot()
    assert len(got) == 7
    for g in got:  # signed as the library signs (the frozen clock's timestamps are too old for its verify)
        at = datetime.fromtimestamp(int(g.headers["webhook-timestamp"]), UTC)
        assert g.headers["webhook-signature"] == Webhook(channel.signing_secret).sign(
            g.headers["webhook-id"], at, g.body
        )
    assert len({g.headers["webhook-id"] for g in got}) == 7
    eighty = next(
        orjson.loads(g.body)
        for g in got
        if orjson.loads(g.body)["data"].get("threshold") == {"value": 80, "type": "PERCENT"}
        and orjson.loads(g.body)["data"]["budget"]["windowStart"] == november
    )
    assert eighty["type"] == BUDGET_THRESHOLD
    data = eighty["data"]
    assert data["budget"]["key"] == "acme-tokens"
    assert data["budget"]["scope"] == "customer"
    assert data["budget"]["target"] == "acme"
    assert data["budget"]["kind"] == "tokens"
    assert data["budget"]["limit"] == "1000"
    assert data["budget"]["hard"] is True
    assert data["budget"]["currency"] is None
    assert data["budget"]["resetsAt"] == "2026-12-01T00:00:00.000Z"
    assert data["value"] == {"usage": "850", "limit": "1000", "balance": "150", "percent": "85"}


async def test_a_refusal_at_the_hard_budget_sends_budget_exceeded_once(two: tuple[Services, Services]) -> None:
    a, b = two
    clock = a.clock
    assert isinstance(clock, FrozenClock)
    worker_a, worker_b = workers(a, b)
    channel = await a.notifications.create_channel(ChannelInput(name="ops", url="http://127.0.0.1:9/hook"))
    await a.notifications.create_rule(RuleInput(type=BUDGET_EXCEEDED, name="over", channels=(channel.id,)))
    await use(a, 990, clock.now())  # 10 left: a call that may use 50 is refused, the budget is not used up
    await rounds([worker_a, worker_b])
    assert await a.notifications.events(EventFilter()) == []

    class Refusing:
        async def admit(self, call: Admit) -> Reservation:
            raise LimitExceededError("no room", limit="budget:acme-tokens", resets_at=NOV)

    class Other:
        async def admit(self, call: Admit) -> Reservation:
            raise LimitExceededError("no room", limit="entitlement:output-tokens", resets_at=NOV)

    for inner, worker in ((Refusing(), worker_a), (Refusing(), worker_b), (Other(), worker_b)):
        with pytest.raises(LimitExceededError):
            await NoticeRefusals(inner, worker.refused).admit(None)  # type: ignore[arg-type]
    assert (worker_a.pokes, worker_b.pokes) == (1, 2)
    await rounds([worker_a, worker_b])
    await rounds([worker_a, worker_b])
    (event,) = await a.notifications.events(EventFilter())
    assert event.type == BUDGET_EXCEEDED
    assert event.data["cause"] == "refused"
    assert event.data["value"] == {"usage": "990", "limit": "1000", "balance": "10", "percent": "99"}
    assert event.subject_key == "acme"
    await use(b, 10, clock.now())  # now used up too: still the one event this window
    await rounds([worker_a, worker_b])
    assert len(await a.notifications.events(EventFilter())) == 1
    clock.set(NOV + timedelta(minutes=5))
    with pytest.raises(LimitExceededError):  # a refusal reported for October's window is not November's
        await NoticeRefusals(Refusing(), worker_a.refused).admit(None)  # type: ignore[arg-type]
    await rounds([worker_a, worker_b])
    assert len(await a.notifications.events(EventFilter())) == 1
    for worker in (worker_a, worker_b):
        await worker.stop()
