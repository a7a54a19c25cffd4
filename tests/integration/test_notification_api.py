"""The notification API: the official openmeter SDK, unchanged, creates channels and rules and reads events
from a live management app; the signing secret is shown once; SSRF attempts and header overrides are refused
with a 400 naming the field; events filter by rule, channel, delivery status and time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openmeter
import pytest
from fastapi import FastAPI

from tests.support.served import served
from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.notifications import MemoryNotificationStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.clock import SystemClock
from tollway.metering.service import MeteringService
from tollway.notifications.service import NotificationService
from tollway.wiring.catalog import build_catalog

TOKEN = "notification-api-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


async def fake_dns(host: str, port: int) -> Sequence[str]:
    table = {"hooks.example.com": ["93.184.216.34"], "intranet.example.com": ["10.20.30.40"]}
    if host not in table:
        raise OSError("Name or service not known")
    return table[host]


def build_app() -> tuple[FastAPI, NotificationService]:
    clock = SystemClock()
    metering = MeteringService(MemoryEventStore(clock), clock)
    asyncio.run(metering.sync_meters([]))
    catalog = build_catalog(MemoryCatalogStore(), metering, clock)
    asyncio.run(
        catalog.features.create_feature(
            key="output-tokens", name="Output tokens", meter_slug="llm_tokens", filters={"type": ("output",)}
        )
    )
    service = NotificationService(MemoryNotificationStore(), clock, resolve=fake_dns)
    app = create_management_app(
        metering=metering, admin_token=TOKEN, catalog=catalog, notifications=service, api_docs="open"
    )
    return app, service


@pytest.fixture(scope="module")
def sdk() -> Iterator[Any]:
    app, _ = build_app()
    with served(app) as base_url:
        yield openmeter.Client(endpoint=base_url, token=TOKEN)


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    app, _ = await asyncio.to_thread(build_app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH) as c:
        yield c


def test_the_openmeter_sdk_creates_channels_and_rules_unchanged(sdk: Any) -> None:
    channel = sdk.notification_channels.create(
        {
            "type": "WEBHOOK",
            "name": "ops",
            "url": "https://hooks.example.com/tollway",
            "customHeaders": {"x-team": "billing"},
            "metadata": {"env": "prod"},
        }
    )
    # the SDK answers channels and rules as JSON objects (its union types), events as models: read both by key
    assert channel["signingSecret"].startswith("whsec_")  # generated, shown once
    assert (channel["type"], channel["name"], channel["customHeaders"], channel["disabled"]) == (
        "WEBHOOK",
        "ops",
        {"x-team": "billing"},
        False,
    )
    again = sdk.notification_channels.get(channel["id"])
    assert "signingSecret" not in again  # never echoed after creation
    assert again["url"] == "https://hooks.example.com/tollway"
    listed = sdk.notification_channels.list()
    assert [c["id"] for c in listed["items"]] == [channel["id"]]
    assert all("signingSecret" not in c for c in listed["items"])

    rule = sdk.notification_rules.create(
        {
            "type": "entitlements.balance.threshold",
            "name": "output tokens",
            "channels": [channel["id"]],
            "features": ["output-tokens"],
            "thresholds": [{"value": 80, "type": "PERCENT"}, {"value": 1000, "type": "NUMBER"}],
        }
    )
    assert rule["type"] == "entitlements.balance.threshold"
    assert [c["id"] for c in rule["channels"]] == [channel["id"]]
    assert [f["key"] for f in rule["features"]] == ["output-tokens"]
    assert rule["thresholds"] == [{"value": 80, "type": "PERCENT"}, {"value": 1000, "type": "NUMBER"}]
    invoices = sdk.notification_rules.create(
        {"type": "invoice.created", "name": "invoices", "channels": [channel["id"]]}
    )
    assert [r["id"] for r in sdk.notification_rules.list()["items"]] == [rule["id"], invoices["id"]]
    assert sdk.notification_rules.get(rule["id"])["name"] == "output tokens"

    event = sdk.notification_rules.test(rule["id"])
    assert event.type == "entitlements.balance.threshold"
    assert event["rule"]["id"] == rule["id"]
    assert event["payload"]["data"]["threshold"] == {"value": 80, "type": "PERCENT"}
    assert [(d["channel"]["id"], d["state"]) for d in event["deliveryStatus"]] == [(channel["id"], "PENDING")]
    assert [e["id"] for e in sdk.notification_events.list(rule=[rule["id"]])["items"]] == [event.id]
    assert sdk.notification_events.get(event.id).id == event.id
    sdk.notification_events.resend(event.id, {})
    assert sdk.notification_events.get(event.id)["deliveryStatus"][0]["state"] == "RESENDING"
    sdk.notification_rules.delete(invoices["id"])
    assert [r["id"] for r in sdk.notification_rules.list()["items"]] == [rule["id"]]


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://intranet.example.com/hook", "10.20.30.40, a private address"),
        ("http://hooks.example.com/hook", "https://"),
    ],
)
async def test_ssrf_attempts_are_refused_naming_the_field(api: httpx.AsyncClient, url: str, said: str) -> None:
    answer = await api.post("/api/v1/notification/channels", json={"type": "WEBHOOK", "name": "evil", "url": url})
    assert answer.status_code == 400, answer.text
    problem = answer.json()
    assert problem["field"] == "url"
    assert said in problem["detail"]
    listed = await api.get("/api/v1/notification/channels")
    assert listed.json()["totalCount"] == 0  # nothing stored


async def test_custom_headers_cannot_override_the_signature(api: httpx.AsyncClient) -> None:
    for header in ("webhook-signature", "Webhook-Id", "webhook-timestamp"):
        answer = await api.post(
            "/api/v1/notification/channels",
            json={"type": "WEBHOOK", "name": "x", "url": "https://hooks.example.com/", "customHeaders": {header: "v"}},
        )
        assert answer.status_code == 400
        assert answer.json()["field"] == f"customHeaders.{header}"


async def test_bad_rules_name_the_field(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/api/v1/notification/channels",
        json={"type": "WEBHOOK", "name": "ops", "url": "https://hooks.example.com/", "signingSecret": "whsec_nope"},
    )
    assert (created.status_code, created.json()["field"]) == (400, "signingSecret")
    channel = (
        await api.post(
            "/api/v1/notification/channels",
            json={"type": "WEBHOOK", "name": "ops", "url": "https://hooks.example.com/"},
        )
    ).json()
    cases = [
        ({"type": "entitlements.balance.threshold", "name": "r", "channels": [channel["id"]]}, "thresholds"),
        ({"type": "invoice.created", "name": "r", "channels": ["01JNOPE"]}, "channels[0]"),
        ({"type": "invoice.created", "name": "r", "channels": []}, "channels"),
        ({"type": "nope", "name": "r", "channels": [channel["id"]]}, "type"),
        (
            {
                "type": "entitlements.balance.threshold",
                "name": "r",
                "channels": [channel["id"]],
                "features": ["no-such-feature"],
                "thresholds": [{"value": 80, "type": "PERCENT"}],
            },
            "features[0]",
        ),
        (
            {
                "type": "entitlements.balance.threshold",
                "name": "r",
                "channels": [channel["id"]],
                "thresholds": [{"value": 80, "type": "PERCENTS"}],
            },
            "thresholds[0].type",
        ),
    ]
    for body, field in cases:
        answer = await api.post("/api/v1/notification/rules", json=body)
        assert (answer.status_code, answer.json().get("field")) == (400, field), body
    # a channel a rule uses cannot be deleted
    rule = await api.post(
        "/api/v1/notification/rules", json={"type": "invoice.created", "name": "r", "channels": [channel["id"]]}
    )
    assert rule.status_code == 201
    refused = await api.delete(f"/api/v1/notification/channels/{channel['id']}")
    assert (refused.status_code, refused.json()["field"]) == (400, "channelId")


async def test_events_filter_by_rule_channel_state_and_time(api: httpx.AsyncClient) -> None:
    async def make_channel(name: str) -> str:
        answer = await api.post(
            "/api/v1/notification/channels", json={"type": "WEBHOOK", "name": name, "url": "https://hooks.example.com/"}
        )
        return str(answer.json()["id"])

    a, b = await make_channel("a"), await make_channel("b")
    rule_a = (
        await api.post("/api/v1/notification/rules", json={"type": "invoice.created", "name": "a", "channels": [a]})
    ).json()
    rule_b = (
        await api.post("/api/v1/notification/rules", json={"type": "invoice.paid", "name": "b", "channels": [b]})
    ).json()
    first = (await api.post(f"/api/v1/notification/rules/{rule_a['id']}/test")).json()
    second = (await api.post(f"/api/v1/notification/rules/{rule_b['id']}/test")).json()
    assert first["payload"]["data"]["test"] is True

    async def ids(**params: Any) -> list[str]:
        answer = await api.get("/api/v1/notification/events", params=params)
        assert answer.status_code == 200, answer.text
        return [e["id"] for e in answer.json()["items"]]

    assert await ids() == [second["id"], first["id"]]
    paged = (await api.get("/api/v1/notification/events", params={"page": 2, "pageSize": 1})).json()
    assert ([e["id"] for e in paged["items"]], paged["totalCount"], paged["page"]) == ([first["id"]], 2, 2)
    assert await ids(rule=rule_a["id"]) == [first["id"]]
    assert await ids(channel=b) == [second["id"]]
    assert await ids(deliveryStatus="PENDING") == [second["id"], first["id"]]
    assert await ids(deliveryStatus="FAILED") == []
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert await ids(**{"from": later}) == []
    assert await ids(to=later) == [second["id"], first["id"]]
    bad = await api.get("/api/v1/notification/events", params={"deliveryStatus": "LOST"})
    assert (bad.status_code, bad.json()["field"]) == (400, "deliveryStatus")
    missing = await api.get("/api/v1/notification/events/01JNOPE")
    assert missing.status_code == 404
    assert (await api.post("/api/v1/notification/events/01JNOPE/resend")).status_code == 404
