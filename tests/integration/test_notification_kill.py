"""A `tollway worker` killed with -9 in the middle of a webhook delivery (the receiver holds the request): a
second worker delivers the event once the first one's claim lease runs out, with the same webhook-id, signed
so that the standardwebhooks library verifies it. The one test here that starts processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from tests.support.net import wait_until
from tests.support.webhook_receiver import Receiver
from tollway.clock import SystemClock
from tollway.notifications.model import EventFilter
from tollway.notifications.service import ChannelInput, RuleInput
from tollway.settings import Settings
from tollway.wiring.services import build_services


def start_worker(tmp_path: Path, url: str, name: str) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_")},
        "TOLLWAY_DATABASE_URL": url,
        "TOLLWAY_JOURNAL_DIR": str(tmp_path / "journal"),
        "TOLLWAY_WEBHOOK_ALLOW_PRIVATE": "1",
        "TOLLWAY_NOTIFICATION_LEASE_S": "2",
        "TOLLWAY_NOTIFICATION_INTERVAL_S": "0.1",
        "TOLLWAY_BALANCE_INTERVAL_S": "0.5",
        "TOLLWAY_BILLING_INTERVAL_S": "3600",
    }
    log = (tmp_path / f"{name}.log").open("ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "tollway", "worker"], env=env, stdout=log, stderr=log)
    finally:
        log.close()


async def test_a_worker_killed_mid_delivery_still_delivers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    services = build_services(Settings(database_url=url, webhook_allow_private=True), SystemClock())
    await services.open()
    with Receiver(hold_first=True) as receiver:
        channel = await services.notifications.create_channel(ChannelInput(name="ops", url=receiver.url))
        receiver.secret = channel.signing_secret
        await services.notifications.create_rule(RuleInput(type="invoice.paid", name="paid", channels=(channel.id,)))
        assert await services.notifications.emit("invoice.paid", {"id": "01JPAID"}) == 1
        first = start_worker(tmp_path, url, "first")
        second: subprocess.Popen[bytes] | None = None
        try:
            wait_until(lambda: len(receiver.snapshot()) == 1, timeout_s=30)  # the first worker is mid-delivery
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            receiver.release.set()
            second = start_worker(tmp_path, url, "second")
            wait_until(lambda: len(receiver.snapshot()) == 2, timeout_s=30)
            got = receiver.snapshot()

            async def delivered() -> bool:
                (event,) = await services.notifications.events(EventFilter())
                return event.deliveries[0].state == "SUCCESS"

            for _ in range(100):
                if await delivered():
                    break
                await asyncio.sleep(0.1)
            (event,) = await services.notifications.events(EventFilter())
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(20)
            await services.close()
    assert first.returncode == -signal.SIGKILL
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"] == event.id
    assert got[1].verified, got[1].error
    assert orjson.loads(got[1].body)["data"] == {"id": "01JPAID"}
    (delivery,) = event.deliveries
    assert (delivery.state, delivery.attempts) == ("SUCCESS", 2)
    assert [a.status_code for a in delivery.history] == [200]  # the killed attempt left no record
    assert datetime.now(UTC) - event.created_at < timedelta(seconds=60)
