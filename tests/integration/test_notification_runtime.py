"""Notifications in a whole Tollway (composition root, SQLite): channels and rules from the config file's
`notifications:` section, an invoice issued through the API delivered as a signed invoice.created, /metrics
counting deliveries and the outbox's oldest pending age, the signing secret scrubbed from log lines, and
`tollway notifications events --failed` listing what did not arrive."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from standardwebhooks import Webhook
from typer.testing import CliRunner

from tests.support.in_process import InProcess, in_process
from tests.support.prometheus import prometheus_value
from tests.support.webhook_receiver import Receiver
from tollway.cli.main import app
from tollway.clock import FrozenClock
from tollway.metering.pipeline import UsagePipeline
from tollway.notifications.apply import config_id
from tollway.notifications.model import Attempt
from tollway.notifications.ports import AttemptResult
from tollway.notifications.service import ChannelInput, RuleInput
from tollway.settings import Settings
from tollway.wiring.services import build_services

TOKEN = "notify-admin-token"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_config_channels_and_rules_deliver_and_show_in_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Receiver(secret=SECRET) as receiver:
        config = {
            "notifications": {
                "channels": [{"name": "ops", "url": receiver.url, "signing_secret": SECRET}],
                "rules": [{"name": "invoices", "type": "invoice.created", "channels": ["ops"]}],
            }
        }
        async with in_process(tmp_path, config, admin_token=TOKEN, webhook_allow_private=True) as tollway:
            runtime = tollway.runtime
            assert runtime.notifier is not None
            assert runtime.notifications is not None
            async with tollway.http() as http:
                auth = {"authorization": f"Bearer {TOKEN}"}
                channels = (await http.get("/api/v1/notification/channels", headers=auth)).json()["items"]
                assert [(c["name"], c["metadata"]) for c in channels] == [("ops", {"managedBy": "config"})]
                assert "signingSecret" not in channels[0]
                assert channels[0]["id"] == config_id("channel", "ops")  # the same in every process applying it
                rules = (await http.get("/api/v1/notification/rules", headers=auth)).json()["items"]
                assert [(r["name"], r["type"]) for r in rules] == [("invoices", "invoice.created")]
                await runtime.notifications.emit("invoice.created", {"id": "01JINV"})
                await runtime.notifier.run_once()
                metrics = (await http.get("/metrics")).text
            # applying the same file again changes nothing
            await runtime.reload()
            assert len(await runtime.notifications.channels()) == 1
            logging.getLogger("tollway.test").warning("leaked %s", SECRET)
        (got,) = receiver.snapshot()
    assert got.verified, got.error
    assert orjson.loads(got.body)["data"] == {"id": "01JINV"}
    assert (
        prometheus_value(
            metrics, 'tollway_notification_deliveries_total{event_type="invoice.created",outcome="success"}'
        )
        == 1
    )
    assert prometheus_value(metrics, "tollway_notification_outbox_oldest_pending_seconds") == 0
    assert SECRET not in caplog.text


def test_cli_lists_failed_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    lost_id, fine_id = asyncio.run(failed_and_delivered(url))
    env = {"TOLLWAY_DATABASE_URL": url, "COLUMNS": "300"}
    result = CliRunner().invoke(app, ["notifications", "events", "--failed"], env=env)
    assert result.exit_code == 0, result.output
    assert lost_id in result.output
    assert "FAILED" in result.output
    assert "gave up after 8 attempts" in result.output
    assert fine_id not in result.output
    as_json = CliRunner().invoke(app, ["notifications", "events", "--failed", "--json"], env=env)
    events = orjson.loads(as_json.output)
    assert [(e["id"], e["deliveryStatus"][0]["state"]) for e in events] == [(lost_id, "FAILED")]


async def failed_and_delivered(url: str) -> tuple[str, str]:
    """Two events on one channel: one whose delivery gave up (FAILED), one delivered."""
    clock = FrozenClock(datetime(2026, 12, 1, tzinfo=UTC))
    services = build_services(Settings(database_url=url, webhook_allow_private=True), clock)
    await services.open()
    try:
        service = services.notifications
        channel = await service.create_channel(ChannelInput(name="ops", url="http://127.0.0.1:9/hook"))
        await service.create_rule(RuleInput(type="invoice.paid", name="paid", channels=(channel.id,)))
        await service.emit("invoice.paid", {"id": "01JLOST"})
        await service.emit("invoice.paid", {"id": "01JFINE"})
        jobs = await service.store.claim_deliveries(now=clock.now(), limit=10, lease_s=60)
        lost = next(j for j in jobs if j.event.data["id"] == "01JLOST")
        fine = next(j for j in jobs if j.event.data["id"] == "01JFINE")
        attempt = Attempt(clock.now(), "FAILED", 500, "boom", 3, channel.url)
        await service.store.finish_delivery(
            lost.event.id, channel.id, AttemptResult(attempt, "FAILED", None, "gave up after 8 attempts: HTTP 500")
        )
        ok = Attempt(clock.now() + timedelta(seconds=1), "SUCCESS", 200, "", 3, channel.url)
        await service.store.finish_delivery(fine.event.id, channel.id, AttemptResult(ok, "SUCCESS", None, ""))
    finally:
        await services.close()
    return lost.event.id, fine.event.id


START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
GATEWAY_CONFIG: dict[str, Any] = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [{"username": "acme-corp", "keys": ["acme-key"]}],
    "features": [{"key": "output-tokens", "meter": "llm_tokens", "filters": {"type": "output"}}],
    "plans": [
        {
            "key": "capped",
            "name": "Capped",
            "currency": "USD",
            "billing_cadence": "P1M",
            "rate_cards": [
                {
                    "feature": "output-tokens",
                    "price": {"type": "unit", "amount": "0.00001"},
                    "entitlement": {"type": "metered", "limit": "100", "hard": True},
                }
            ],
        }
    ],
    "customers": [{"key": "acme", "name": "Acme", "usage_from": ["acme-corp"], "subscription": {"plan": "capped"}}],
}
CHAT = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper and the sea."}]


async def flush(tollway: InProcess) -> None:
    """Store the usage the gateway buffered (inline ingest) now rather than on the flush interval."""
    pipeline = tollway.runtime.pipeline
    assert isinstance(pipeline, UsagePipeline)
    assert await pipeline.flush()


async def test_traffic_crossing_80_and_100_percent_sends_exactly_two_signed_events(tmp_path: Path) -> None:
    """The issue's "done when": a webhook and a rule at 80% and 100% of a customer's token entitlement; the
    customer's traffic through the gateway crosses both; the receiver, down at first, gets exactly two events it
    can verify."""
    clock = FrozenClock(START)
    with Receiver(statuses=iter([503, 503])) as receiver:
        config = {
            **GATEWAY_CONFIG,
            "notifications": {
                "channels": [{"name": "ops", "url": receiver.url, "signing_secret": SECRET}],
                "rules": [
                    {
                        "name": "tokens",
                        "type": "entitlements.balance.threshold",
                        "channels": ["ops"],
                        "features": ["output-tokens"],
                        "thresholds": [{"value": 80, "type": "PERCENT"}, {"value": 100, "type": "PERCENT"}],
                    }
                ],
            },
        }
        async with in_process(tmp_path, config, clock=clock, webhook_allow_private=True) as tollway:
            notifier = tollway.runtime.notifier
            assert notifier is not None
            async with (
                tollway.http2() as http,
                openai.AsyncOpenAI(
                    base_url="http://tollway/v1", api_key="acme-key", http_client=http, max_retries=0
                ) as client,
            ):

                async def call(max_tokens: int) -> None:
                    await client.chat.completions.create(model="demo", messages=CHAT, max_tokens=max_tokens)  # type: ignore[arg-type]

                await asyncio.gather(*(call(24) for _ in range(4)))  # 96 of 100, at once
                await flush(tollway)
                await notifier.detect_once()
                await call(4)  # 100 of 100
                assert notifier.pokes == 0
                with pytest.raises(openai.RateLimitError):
                    await call(4)
                assert notifier.pokes == 1  # the refusal at the hard limit asks for a threshold round now
                await flush(tollway)
                await notifier.detect_once()
                await notifier.detect_once()
            await notifier.run_once()  # the receiver is down: 503 for both
            clock.advance(timedelta(seconds=5))
            await notifier.run_once()  # the 5 s retry: delivered
            clock.advance(timedelta(hours=1))
            await notifier.run_once()  # nothing more
        got = receiver.snapshot()
    assert [g.status for g in got] == [503, 503, 200, 200]
    delivered = [g for g in got if g.status == 200]
    assert len({g.headers["webhook-id"] for g in delivered}) == 2
    assert {g.headers["webhook-id"] for g in got} == {g.headers["webhook-id"] for g in delivered}
    thresholds = sorted(orjson.loads(g.body)["data"]["threshold"]["value"] for g in delivered)
    assert thresholds == [80, 100]
    for g in delivered:
        at = datetime.fromtimestamp(int(g.headers["webhook-timestamp"]), UTC)
        assert g.headers["webhook-signature"] == Webhook(SECRET).sign(g.headers["webhook-id"], at, g.body)
        assert orjson.loads(g.body)["data"]["customer"]["key"] == "acme"
