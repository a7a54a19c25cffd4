"""What the catalog API tests share: request bodies, the problem and success checks, the catalog set-up steps
over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService

TOKEN = "catalog-admin-token"


NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


CATALOG_PREFIXES = ("/api/v1/features", "/api/v1/plans", "/api/v1/customers", "/api/v1/subscriptions")


@dataclass
class Env:
    client: httpx.AsyncClient
    clock: FrozenClock
    metering: MeteringService
    app: Any


def refused(response: httpx.Response, status: int, field: str) -> None:
    """An RFC 7807 problem with the given status that names `field`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    named = [body.get("field")] + [e.get("field") for e in body.get("errors", [])]
    assert field in named, body


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


INPUT = {
    "key": "input-tokens",
    "name": "Input tokens",
    "meterSlug": "llm_tokens",
    "meterGroupByFilters": {"type": "input"},
}


OUTPUT = {
    "key": "output-tokens",
    "name": "Output tokens",
    "meterSlug": "llm_tokens",
    "meterGroupByFilters": {"type": "output"},
}


def unit_card(key: str = "input", feature: str = "input-tokens", amount: str = "0.000003") -> dict[str, Any]:
    return {
        "type": "usage_based",
        "key": key,
        "name": key.title(),
        "featureKey": feature,
        "billingCadence": "P1M",
        "price": {"type": "unit", "amount": amount},
    }


def tiered_card() -> dict[str, Any]:
    return {
        "type": "usage_based",
        "key": "output",
        "name": "Output",
        "featureKey": "output-tokens",
        "billingCadence": "P1M",
        "price": {
            "type": "tiered",
            "mode": "graduated",
            "tiers": [
                {"upToAmount": "1000000", "unitPrice": {"type": "unit", "amount": "0.00001"}},
                {"unitPrice": {"type": "unit", "amount": "0.000008"}, "flatPrice": {"type": "flat", "amount": "5"}},
            ],
            "minimumAmount": "10",
            "maximumAmount": "5000",
        },
        "discounts": {"percentage": {"percentage": 12.5}, "usage": {"quantity": "100000"}},
        "entitlementTemplate": {"type": "metered", "issueAfterReset": 5000000, "isSoftLimit": False},
    }


def plan_body(key: str = "starter", cards: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "key": key,
        "name": key.title(),
        "currency": "USD",
        "billingCadence": "P1M",
        "phases": [{"key": "main", "name": "Main", "rateCards": cards if cards is not None else [unit_card()]}],
    }


async def features(api: httpx.AsyncClient) -> None:
    ok(await api.post("/api/v1/features", json=INPUT), 201)
    ok(await api.post("/api/v1/features", json=OUTPUT), 201)


async def published(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    plan = ok(await api.post("/api/v1/plans", json=body), 201)
    return ok(await api.post(f"/api/v1/plans/{plan['id']}/publish"))  # type: ignore[no-any-return]


ACME = {
    "key": "acme",
    "name": "Acme Corp",
    "description": "Rockets",
    "primaryEmail": "billing@acme.example",
    "currency": "USD",
    "billingAddress": {"country": "US", "city": "Tucson", "line1": "1 Desert Rd", "postalCode": "85701"},
    "usageAttribution": {"subjectKeys": ["acme-corp", "acme-batch"]},
    "metadata": {"tier": "gold"},
}
