"""Kong's metering & billing plugin pointed at Tollway unchanged: its meters created with OpenMeter's v3 body on
/api/v3/openmeter/meters, its events (`kong.llm_request` and `kong.api_request`, the fields Kong's docs list in
app/_data/plugins/metering-and-billing.yaml) posted to /api/v3/openmeter/events (202, as OpenMeter v3 answers),
then priced through a plan on an invoice preview. Kong key-auth's `?apikey=` works on the gateway and is gone
from the request before anything reads it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.in_process import InProcess, in_process
from tollway.clock import FrozenClock
from tollway.gateway.auth import key_from_query

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ADMIN = "kong-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
CONSUMER = "Jane Doe"  # a Kong consumer name with a space
CONFIG: dict[str, Any] = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [{"username": CONSUMER, "keys": ["jane-secret-key"]}],
}
# Kong's how-to meters, in OpenMeter's v3 body
METERS = [
    {
        "key": "kong_llm_tokens",
        "name": "AI tokens",
        "event_type": "kong.llm_request",
        "aggregation": "sum",
        "value_property": "$.tokens",
        "dimensions": {"type": "$.type", "model": "$.model", "provider": "$.provider"},
    },
    {
        "key": "kong_api_requests",
        "name": "API requests",
        "event_type": "kong.api_request",
        "aggregation": "count",
        "dimensions": {"route": "$.route_name", "status": "$.response_http_status"},
    },
]


def llm_event(n: int, at: datetime, phase: str, tokens: int) -> dict[str, Any]:
    """One of the two kong.llm_request events Kong emits per AI call (`type` request: prompt tokens; response:
    completion tokens)."""
    return {
        "specversion": "1.0",
        "id": f"8a1f6c2e-0b7d-4c1e-9a51-{n:012d}",
        "source": "kong-gateway",
        "type": "kong.llm_request",
        "subject": CONSUMER,
        "time": at.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": {
            "type": phase,
            "control_plane_id": "6d1c3c5e-cp",
            "service_id": "a7f3-svc",
            "route_id": "c2d9-route",
            "http_status": 200,
            "api_request_id": f"req-{n // 2}",
            "ai_plugin_id": "f00d-plugin",
            "ai_plugin_name": "ai-proxy-advanced",
            "model": "gpt-4o",
            "provider": "openai",
            "tokens": tokens,
            "cache_status": "",
            "subject_type": "consumer_username",
        },
    }


def api_event(n: int, at: datetime, status: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"3e9b1d70-5f2a-4b8c-8d14-{n:012d}",
        "source": "kong-gateway",
        "type": "kong.api_request",
        "subject": CONSUMER,
        "time": at.isoformat().replace("+00:00", "Z"),
        "data": {
            "client_ip": "203.0.113.7",
            "control_plane_id": "6d1c3c5e-cp",
            "request_host": "api.example.com",
            "request_method": "POST",
            "request_uri": "/chat",
            "request_size_bytes": 512,
            "request_user_agent": "curl/8.5.0",
            "response_size_bytes": 2048,
            "response_http_status": status,
            "route_id": "c2d9-route",
            "route_name": "chat",
            "service_id": "a7f3-svc",
            "service_name": "llm",
            "service_port": 443,
            "service_protocol": "https",
            "subject_type": "consumer_username",
            "upstream_status": str(status),
        },
    }


@pytest.fixture
async def tollway(tmp_path: Path) -> AsyncIterator[tuple[InProcess, FrozenClock]]:
    clock = FrozenClock(NOW)
    async with in_process(tmp_path, CONFIG, clock=clock, admin_token=ADMIN) as running:
        yield running, clock


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def test_kongs_meters_and_events_are_priced_through_a_plan(tollway: tuple[InProcess, FrozenClock]) -> None:
    app, clock = tollway
    async with app.http() as http:
        for meter in METERS:
            created = ok(await http.post("/api/v3/openmeter/meters", json=meter, headers=AUTH), 201)
            assert (created["key"], created["aggregation"], created["dimensions"]) == (
                meter["key"],
                meter["aggregation"],
                meter["dimensions"],
            )
            assert created["event_type_filter"] == meter["event_type"]
        v1 = ok(await http.get("/api/v1/meters/kong_llm_tokens", headers=AUTH))
        assert (v1["eventType"], v1["aggregation"], v1["valueProperty"]) == ("kong.llm_request", "SUM", "$.tokens")
        for feature in (
            {
                "key": "prompt-tokens",
                "name": "Prompt",
                "meterSlug": "kong_llm_tokens",
                "meterGroupByFilters": {"type": "request"},
            },
            {
                "key": "completion-tokens",
                "name": "Completion",
                "meterSlug": "kong_llm_tokens",
                "meterGroupByFilters": {"type": "response"},
            },
            {"key": "api-requests", "name": "Requests", "meterSlug": "kong_api_requests"},
        ):
            ok(await http.post("/api/v1/features", json=feature, headers=AUTH), 201)

        def card(key: str, amount: str) -> dict[str, Any]:
            price = {"type": "unit", "amount": amount}
            return {
                "type": "usage_based",
                "key": key,
                "name": key,
                "featureKey": key,
                "billingCadence": "P1M",
                "price": price,
            }

        cards = [card("prompt-tokens", "0.000003"), card("completion-tokens", "0.00001"), card("api-requests", "0.25")]
        plan_body = {
            "key": "kong",
            "name": "Kong",
            "currency": "USD",
            "billingCadence": "P1M",
            "phases": [{"key": "main", "name": "Main", "rateCards": cards}],
        }
        plan = ok(await http.post("/api/v1/plans", json=plan_body, headers=AUTH), 201)
        ok(await http.post(f"/api/v1/plans/{plan['id']}/publish", headers=AUTH))
        customer_body = {"key": "jane", "name": "Jane", "usageAttribution": {"subjectKeys": [CONSUMER]}}
        customer = ok(await http.post("/api/v1/customers", json=customer_body, headers=AUTH), 201)
        subscription_body = {"customerId": customer["id"], "plan": {"key": "kong"}}
        ok(await http.post("/api/v1/subscriptions", json=subscription_body, headers=AUTH), 201)

        at = NOW + timedelta(minutes=1)
        events = [
            llm_event(0, at, "request", 100_000),
            llm_event(1, at, "response", 40_000),
            llm_event(2, at, "request", 250_000),
            llm_event(3, at, "response", 60_000),
            *(api_event(n, at, status) for n, status in enumerate((200, 200, 429))),
        ]
        clock.advance(timedelta(minutes=5))
        batch = {"Content-Type": "application/cloudevents-batch+json", **AUTH}
        posted = await http.post("/api/v3/openmeter/events", content=orjson.dumps(events), headers=batch)
        assert posted.status_code == 202, posted.text
        assert (posted.headers["Tollway-Events-Received"], posted.headers["Tollway-Events-Stored"]) == ("7", "7")
        again = await http.post("/api/v3/openmeter/events", content=orjson.dumps(events[:1]), headers=batch)
        assert (again.status_code, again.headers["Tollway-Events-Stored"]) == (202, "0")  # a retry is deduplicated
        bad = await http.post("/api/v3/openmeter/events", json={"specversion": "1.0"}, headers=AUTH)
        assert bad.status_code == 400

        query = {"groupBy": ["type"], "subject": [CONSUMER]}
        rows = ok(await http.post("/api/v1/meters/kong_llm_tokens/query", json=query, headers=AUTH))["data"]
        assert sorted((r["groupBy"]["type"], r["value"]) for r in rows) == [
            ("request", "350000"),
            ("response", "100000"),
        ]

        preview = ok(await http.get("/api/v1/invoices/preview", params={"customer": "jane"}, headers=AUTH))
        lines = {line["featureKey"]: (line["quantity"], line["amount"]) for line in preview["lines"]}
        assert lines == {
            "prompt-tokens": ("350000", "1.05"),
            "completion-tokens": ("100000", "1"),
            "api-requests": ("3", "0.75"),
        }
        assert preview["total"] == "2.8"  # decimal strings without trailing zeros (1.05 + 1 + 0.75)


async def test_kong_key_auth_query_key_on_the_gateway(tollway: tuple[InProcess, FrozenClock]) -> None:
    app, _ = tollway
    body = {"model": "demo", "messages": [{"role": "user", "content": "Hello"}]}
    async with app.http() as http:
        answered = await http.post("/v1/chat/completions?apikey=jane-secret-key", json=body)
        assert answered.status_code == 200, answered.text
        refused = await http.post("/v1/chat/completions?apikey=not-a-key-at-all", json=body)
        assert refused.status_code == 401
        assert "not-a-key" not in refused.text


def test_the_query_key_leaves_the_url_before_anything_reads_it() -> None:
    scope = {"query_string": b"a=1&apikey=jane%20key&b=2&apikey=second", "headers": [(b"host", b"x")]}
    moved = key_from_query(scope, b"apikey", b"apikey")
    assert moved["query_string"] == b"a=1&b=2"  # the first one is the key, as Kong reads it; none stays
    assert moved["headers"] == [(b"host", b"x"), (b"apikey", b"jane key")]
    assert key_from_query({"query_string": b"apikeys=1", "headers": []}, b"apikey", b"apikey")["headers"] == []
