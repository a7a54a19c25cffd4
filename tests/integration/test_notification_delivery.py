"""Delivery to a real HTTP receiver on loopback that verifies each webhook with the `standardwebhooks` library:
signed deliveries, the retry schedule on a frozen clock (500 three times, then 200: the 4th try arrives with
the same webhook-id), 410 disabling the channel, redirects not followed, and a claim whose worker died
delivered again once its lease runs out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from standardwebhooks import Webhook

from tests.support.webhook_receiver import Receiver
from tollway.adapters.memory.notifications import MemoryNotificationStore
from tollway.adapters.webhooks.sender import HttpWebhookSender, resolve
from tollway.clock import Clock, FrozenClock, SystemClock
from tollway.notifications.delivery import DeliveryWorker
from tollway.notifications.model import INVOICE_CREATED, EventFilter
from tollway.notifications.service import ChannelInput, NotificationService, RuleInput


class Setup:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.store = MemoryNotificationStore()
        self.service = NotificationService(self.store, clock, resolve=resolve, allow_private=True)
        self.sender = HttpWebhookSender(allow_private=True)
        self.counts: list[tuple[str, str]] = []
        self.worker = DeliveryWorker(
            self.store,
            self.sender,
            clock,
            resolve=resolve,
            allow_private=True,
            lease_s=30,
            count=lambda t, o: self.counts.append((t, o)),
        )

    async def channel_and_rule(self, url: str) -> tuple[str, str]:
        channel = await self.service.create_channel(ChannelInput(name="ops", url=url, custom_headers={"x-env": "test"}))
        await self.service.create_rule(RuleInput(type=INVOICE_CREATED, name="invoices", channels=(channel.id,)))
        return channel.id, channel.signing_secret


@pytest.fixture
async def live() -> AsyncIterator[Setup]:
    setup = Setup(SystemClock())
    yield setup
    await setup.sender.close()


async def test_a_signed_delivery_verifies_with_the_standard_library(live: Setup) -> None:
    with Receiver() as receiver:
        channel_id, secret = await live.channel_and_rule(receiver.url)
        receiver.secret = secret
        assert await live.service.emit(INVOICE_CREATED, {"id": "01JINV", "status": "issued"}) == 1
        assert await live.worker.run_once() == 1
        (got,) = receiver.snapshot()
    assert got.verified, got.error
    assert got.headers["x-env"] == "test"
    assert got.headers["content-type"] == "application/json"
    payload = orjson.loads(got.body)
    assert (payload["type"], payload["data"]) == ("invoice.created", {"id": "01JINV", "status": "issued"})
    assert got.headers["webhook-id"] == payload["id"]
    (event,) = await live.service.events(query=EventFilter())
    (delivery,) = event.deliveries
    assert (delivery.channel_id, delivery.state, delivery.attempts) == (channel_id, "SUCCESS", 1)
    assert [a.status_code for a in delivery.history] == [200]
    assert live.counts == [("invoice.created", "success")]
    assert await live.worker.run_once() == 0  # nothing delivered twice


async def test_500_three_times_then_200_on_the_schedule_with_the_same_webhook_id() -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    clock = FrozenClock(start)
    setup = Setup(clock)
    try:
        with Receiver(statuses=iter([500, 500, 500])) as receiver:
            _, secret = await setup.channel_and_rule(receiver.url)
            await setup.service.emit(INVOICE_CREATED, {"id": "01JINV"})
            tried = [await setup.worker.run_once()]
            for wait in (timedelta(seconds=4), timedelta(seconds=1), timedelta(minutes=5), timedelta(minutes=30)):
                clock.advance(wait)
                tried.append(await setup.worker.run_once())
            clock.advance(timedelta(hours=5))
            tried.append(await setup.worker.run_once())
            got = receiver.snapshot()
    finally:
        await setup.sender.close()
    # tries at 0, (4 s: not due), 5 s, 5 min 5 s, 35 min 5 s; then nothing more
    assert tried == [1, 0, 1, 1, 1, 0]
    assert [g.status for g in got] == [500, 500, 500, 200]
    assert len({g.headers["webhook-id"] for g in got}) == 1
    stamps = [int(g.headers["webhook-timestamp"]) - int(start.timestamp()) for g in got]
    assert stamps == [0, 5, 305, 2105]
    for g in got:  # each attempt signed for its own timestamp, as the library signs it
        at = datetime.fromtimestamp(int(g.headers["webhook-timestamp"]), UTC)
        assert g.headers["webhook-signature"] == Webhook(secret).sign(g.headers["webhook-id"], at, g.body)
    (event,) = await setup.store.list_events(EventFilter())
    (delivery,) = event.deliveries
    assert (delivery.state, delivery.attempts) == ("SUCCESS", 4)
    assert setup.counts == [("invoice.created", o) for o in ("retry", "retry", "retry", "success")]


async def test_410_disables_the_channel_and_redirects_are_not_followed(live: Setup) -> None:
    with Receiver(statuses=iter([410])) as gone, Receiver(statuses=iter([302])) as moved:
        gone_id, _ = await live.channel_and_rule(gone.url)
        await live.channel_and_rule(moved.url)
        await live.service.emit(INVOICE_CREATED, {"id": "01JINV"})
        assert await live.worker.run_once() == 2
        channel = await live.service.channel(gone_id)
        assert channel.disabled
        assert channel.disabled_reason == "the receiver answered 410 Gone: channel disabled"
        await live.service.emit(INVOICE_CREATED, {"id": "01JINV2"})  # goes to the live channel only
        assert await live.worker.run_once() == 1
        assert (len(gone.snapshot()), len(moved.snapshot())) == (1, 2)
    assert sorted(live.counts) == sorted(
        [("invoice.created", "gone"), ("invoice.created", "retry"), ("invoice.created", "success")]
    )


async def test_a_claim_whose_worker_died_is_delivered_after_its_lease() -> None:
    clock = FrozenClock(datetime.now(UTC))
    setup = Setup(clock)
    try:
        with Receiver() as receiver:
            _, secret = await setup.channel_and_rule(receiver.url)
            receiver.secret = secret
            await setup.service.emit(INVOICE_CREATED, {"id": "01JINV"})
            (claimed,) = await setup.store.claim_deliveries(now=clock.now(), limit=10, lease_s=30)  # then "killed"
            assert await setup.worker.run_once() == 0  # the lease holds
            clock.advance(timedelta(seconds=30))
            assert await setup.worker.run_once() == 1
            (got,) = receiver.snapshot()
    finally:
        await setup.sender.close()
    assert got.headers["webhook-id"] == claimed.event.id


async def test_connection_refused_is_retried(live: Setup) -> None:
    with Receiver() as receiver:
        url = receiver.url
    await live.channel_and_rule(url)  # nobody listens there any more
    await live.service.emit(INVOICE_CREATED, {"id": "01JINV"})
    assert await live.worker.run_once() == 1
    (event,) = await live.store.list_events(EventFilter())
    (delivery,) = event.deliveries
    assert delivery.state == "PENDING"
    assert delivery.reason.startswith("attempt 1 failed: no answer")


async def test_the_connection_itself_refuses_a_private_address() -> None:
    """Even past the URL check (a name whose DNS answer changed after it), the connector's resolver refuses."""
    guarded, open_ = HttpWebhookSender(), HttpWebhookSender(allow_private=True)
    try:
        with Receiver() as receiver:
            url = receiver.url.replace("127.0.0.1", "localhost")
            refused = await guarded.send(url, {"content-type": "application/json"}, b"{}", timeout_s=5)
            assert receiver.snapshot() == []
            allowed = await open_.send(url, {"content-type": "application/json"}, b"{}", timeout_s=5)
            assert len(receiver.snapshot()) == 1
    finally:
        await guarded.close()
        await open_.close()
    assert refused.status_code is None
    assert refused.body.startswith("no answer: ClientConnectorDNSError")
    assert allowed.status_code == 200
