"""Entitlement values over the management API: metered values following usage, static and boolean values."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from tests.integration.catalog_api.helpers import (
    ACME,
    NOW,
    Env,
    features,
    ok,
    plan_body,
    published,
    refused,
    tiered_card,
)


async def test_entitlement_value_follows_usage(env: Env) -> None:
    api = env.client
    await features(api)
    await published(api, plan_body("pro", [tiered_card()]))
    ok(await api.post("/api/v1/customers", json=ACME), 201)
    ok(await api.post("/api/v1/subscriptions", json={"customerKey": "acme", "plan": {"key": "pro"}}), 201)

    def tokens(event_id: str, subject: str, kind: str, count: int, minutes: int) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": event_id,
            "source": "test",
            "type": "llm.tokens",
            "subject": subject,
            "time": (NOW + timedelta(minutes=minutes)).isoformat(),
            "data": {"tokens": count, "type": kind, "model": "gpt-4o", "provider": "openai", "status_code": 200},
        }

    before_start = {**tokens("e0", "acme-corp", "output", 999, 0), "time": "2026-10-01T11:00:00Z"}
    events = [
        before_start,  # before the subscription: not counted
        tokens("e1", "acme-corp", "output", 3_000_000, 5),
        tokens("e2", "acme-batch", "output", 1_500_000, 6),
        tokens("e3", "acme-corp", "input", 7_000_000, 7),  # another feature
        tokens("e4", "someone-else", "output", 8_000_000, 8),  # another customer
    ]
    env.clock.advance(timedelta(minutes=30))
    response = await api.post(
        "/api/v1/events", json=events, headers={"content-type": "application/cloudevents-batch+json"}
    )
    assert response.status_code == 204, response.text
    value = ok(await api.get("/api/v1/customers/acme/entitlements/output-tokens/value"))
    used = 3_000_000 + 1_500_000
    assert value == {
        "hasAccess": True,
        "balance": str(5_000_000 - used),
        "usage": str(used),
        "overage": "0",
        "config": None,
    }
    earlier = ok(
        await api.get(
            "/api/v1/customers/acme/entitlements/output-tokens/value", params={"time": "2026-10-01T12:05:30Z"}
        )
    )
    assert (earlier["usage"], earlier["balance"]) == ("3000000", "2000000")
    refused(
        await api.get("/api/v1/customers/acme/entitlements/output-tokens/value", params={"time": "noon"}), 400, "time"
    )
    refused(await api.get("/api/v1/customers/nobody/entitlements/output-tokens/value"), 404, "customer")


async def test_static_and_boolean_entitlement_values(api: httpx.AsyncClient) -> None:
    ok(await api.post("/api/v1/features", json={"key": "limits", "name": "Limits"}), 201)
    ok(await api.post("/api/v1/features", json={"key": "sso", "name": "SSO"}), 201)
    ok(await api.post("/api/v1/features", json={"key": "audit", "name": "Audit log"}), 201)
    cards = [
        {
            "type": "flat_fee",
            "key": "limits",
            "name": "Limits",
            "featureKey": "limits",
            "entitlementTemplate": {"type": "static", "config": '{"maxAgents": 3, "regions": ["eu"]}'},
        },
        {
            "type": "flat_fee",
            "key": "sso",
            "name": "SSO",
            "featureKey": "sso",
            "entitlementTemplate": {"type": "boolean"},
        },
    ]
    plan = await published(api, plan_body("team", cards))
    assert plan["phases"][0]["rateCards"][0]["entitlementTemplate"] == {
        "type": "static",
        "config": '{"maxAgents": 3, "regions": ["eu"]}',
    }
    ok(await api.post("/api/v1/customers", json=ACME), 201)
    url = "/api/v1/customers/acme/entitlements/{}/value"
    assert ok(await api.get(url.format("sso"))) == {  # no subscription yet
        "hasAccess": False,
        "balance": None,
        "usage": None,
        "overage": None,
        "config": None,
    }
    ok(await api.post("/api/v1/subscriptions", json={"customerKey": "acme", "plan": {"key": "team"}}), 201)
    assert ok(await api.get(url.format("limits"))) == {
        "hasAccess": True,
        "balance": None,
        "usage": None,
        "overage": None,
        "config": '{"maxAgents": 3, "regions": ["eu"]}',
    }
    assert ok(await api.get(url.format("sso")))["hasAccess"] is True
    # an access-only feature (no meter) not in the plan: no access, whether or not another plan grants it
    assert ok(await api.get(url.format("audit")))["hasAccess"] is False
    gate = [
        {
            "type": "flat_fee",
            "key": "audit",
            "name": "Audit",
            "featureKey": "audit",
            "entitlementTemplate": {"type": "boolean"},
        }
    ]
    await published(api, plan_body("enterprise", gate))
    assert ok(await api.get(url.format("audit")))["hasAccess"] is False
    refused(await api.get(url.format("nope")), 404, "feature")
    bad = plan_body("bad", [{**cards[0], "entitlementTemplate": {"type": "static", "config": "{not json"}}])
    refused(await api.post("/api/v1/plans", json=bad), 400, "phases[0].rateCards[0].entitlementTemplate.config")
