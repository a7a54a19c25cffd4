"""The catalog management API (features, plans, customers, subscriptions, entitlement values) over HTTP,
in process, against the memory stores: every resource's lifecycle, and bad input refused by field with
nothing stored."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tollway.adapters.memory.catalog import MemoryCatalogStore
from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.clock import FrozenClock
from tollway.metering.service import MeteringService
from tollway.wiring.catalog import build_catalog

TOKEN = "catalog-admin-token"
NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
CATALOG_PREFIXES = ("/api/v1/features", "/api/v1/plans", "/api/v1/customers", "/api/v1/subscriptions")


@dataclass
class Env:
    client: httpx.AsyncClient
    clock: FrozenClock
    metering: MeteringService
    app: Any


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FrozenClock(NOW)
    metering = MeteringService(MemoryEventStore(clock), clock)
    await metering.sync_meters([])  # the built-in meters: llm_tokens, llm_requests
    catalog = build_catalog(MemoryCatalogStore(), metering, clock)
    app = create_management_app(metering=metering, admin_token=TOKEN, catalog=catalog)
    transport = httpx.ASGITransport(app=app)
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://tollway", headers=headers) as client:
        yield Env(client, clock, metering, app)


@pytest.fixture
def api(env: Env) -> httpx.AsyncClient:
    return env.client


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


# -- features ------------------------------------------------------------------------------------


async def test_feature_create_read_list_archive(api: httpx.AsyncClient) -> None:
    created = ok(
        await api.post(
            "/api/v1/features",
            json={
                "key": "gpt4o-output",
                "name": "GPT-4o output",
                "meterSlug": "llm_tokens",
                "meterGroupByFilters": {"type": "output", "model": ["gpt-4o", "gpt-4o-2024-08-06"]},
                "metadata": {"team": "ml"},
            },
        ),
        201,
    )
    assert {k: v for k, v in created.items() if k != "id"} == {
        "key": "gpt4o-output",
        "name": "GPT-4o output",
        "metadata": {"team": "ml"},
        "meterSlug": "llm_tokens",
        "meterGroupByFilters": {"type": "output"},
        "advancedMeterGroupByFilters": {"type": {"$eq": "output"}, "model": {"$in": ["gpt-4o", "gpt-4o-2024-08-06"]}},
        "managedBy": "api",
        "createdAt": "2026-10-01T12:00:00Z",
        "updatedAt": "2026-10-01T12:00:00Z",
        "archivedAt": None,
        "deletedAt": None,
    }
    advanced = ok(
        await api.post(
            "/api/v1/features",
            json={
                "key": "mini",
                "name": "Mini",
                "meterSlug": "llm_tokens",
                "advancedMeterGroupByFilters": {"model": {"$in": ["gpt-4o-mini"]}, "type": {"$eq": "input"}},
            },
        ),
        201,
    )
    assert advanced["advancedMeterGroupByFilters"] == {"model": {"$eq": "gpt-4o-mini"}, "type": {"$eq": "input"}}
    assert ok(await api.get(f"/api/v1/features/{created['id']}")) == created
    assert ok(await api.get("/api/v1/features/gpt4o-output")) == created
    assert [f["key"] for f in ok(await api.get("/api/v1/features"))] == ["gpt4o-output", "mini"]
    page = ok(await api.get("/api/v1/features", params={"pageSize": 1, "page": 2}))
    assert (page["page"], page["pageSize"], page["totalCount"], [f["key"] for f in page["items"]]) == (
        2,
        1,
        2,
        ["mini"],
    )
    assert ok(await api.get("/api/v1/features", params={"meterSlug": "llm_requests"})) == []

    assert (await api.delete("/api/v1/features/mini")).status_code == 204
    assert [f["key"] for f in ok(await api.get("/api/v1/features"))] == ["gpt4o-output"]
    everything = ok(await api.get("/api/v1/features", params={"includeArchived": "true"}))
    assert [(f["key"], f["archivedAt"]) for f in everything] == [
        ("gpt4o-output", None),
        ("mini", "2026-10-01T12:00:00Z"),
    ]


BAD_FEATURES: list[tuple[dict[str, Any], int, str]] = [
    ({"name": "no key", "meterSlug": "llm_tokens"}, 400, "key"),
    ({"key": "has space", "meterSlug": "llm_tokens"}, 400, "key"),
    ({"key": "f", "meterSlug": "no_such_meter"}, 400, "meterSlug"),
    ({"key": "f", "meterSlug": "llm_tokens", "meterGroupByFilters": {"colour": "red"}}, 400, "meterGroupByFilters"),
    ({"key": "f", "meterSlug": "llm_tokens", "meterGroupByFilters": {"type": 5}}, 400, "meterGroupByFilters.type"),
    ({"key": "f", "meterSlug": "llm_tokens", "meterGroupByFilters": {"type": []}}, 400, "meterGroupByFilters.type"),
    (
        {"key": "f", "meterSlug": "llm_tokens", "advancedMeterGroupByFilters": {"type": {"$ne": "input"}}},
        400,
        "advancedMeterGroupByFilters.type.$ne",
    ),
    ({"key": "f", "meterSlug": "llm_tokens", "colour": "red"}, 400, "colour"),
    ({"key": "f", "meterSlug": "llm_tokens", "unitCost": {"type": "manual", "amount": "1"}}, 400, "unitCost"),
    ({"key": "f", "meterSlug": "llm_tokens", "metadata": {"n": 1}}, 400, "metadata"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_FEATURES)
async def test_bad_feature_is_refused_by_field_and_nothing_is_stored(
    api: httpx.AsyncClient, body: dict[str, Any], status: int, field: str
) -> None:
    refused(await api.post("/api/v1/features", json=body), status, field)
    assert ok(await api.get("/api/v1/features", params={"includeArchived": "true"})) == []


async def test_feature_errors_not_found_duplicate_and_in_use(api: httpx.AsyncClient) -> None:
    refused(await api.get("/api/v1/features/nope"), 404, "feature")
    await features(api)
    refused(await api.post("/api/v1/features", json=INPUT), 409, "key")
    await published(api, plan_body())
    refused(await api.delete("/api/v1/features/input-tokens"), 409, "feature")
    assert ok(await api.get("/api/v1/features/input-tokens"))["archivedAt"] is None
    refused(await api.post("/api/v1/features", content=b"{not json"), 400, "body")
    refused(await api.post("/api/v1/features", json=["a"]), 400, "body")


# -- plans ---------------------------------------------------------------------------------------


async def test_plan_lifecycle_draft_publish_next_archive(api: httpx.AsyncClient) -> None:
    await features(api)
    flat = {
        "type": "flat_fee",
        "key": "platform",
        "name": "Platform fee",
        "billingCadence": "P1M",
        "price": {"type": "flat", "amount": "49.00", "paymentTerm": "in_advance"},
    }
    setup = {"type": "flat_fee", "key": "setup", "name": "Setup", "price": {"type": "flat", "amount": "100"}}
    package = {
        "type": "usage_based",
        "key": "input-packs",
        "name": "Input packs",
        "featureKey": "input-tokens",
        "billingCadence": "P1M",
        "price": {"type": "package", "amount": "1", "quantityPerPackage": "100000"},
    }
    ok(await api.post("/api/v1/features", json={"key": "sso", "name": "SSO"}), 201)  # no meter: access only
    gate = {
        "type": "flat_fee",
        "key": "sso",
        "name": "SSO",
        "featureKey": "sso",
        "entitlementTemplate": {"type": "boolean"},
    }
    body = plan_body("pro", [flat, setup, tiered_card(), package, gate])
    body["description"] = "For teams"
    draft = ok(await api.post("/api/v1/plans", json=body), 201)
    assert (draft["key"], draft["version"], draft["status"], draft["currency"], draft["billingCadence"]) == (
        "pro",
        1,
        "draft",
        "USD",
        "P1M",
    )
    cards = draft["phases"][0]["rateCards"]
    assert cards[0]["price"] == {"type": "flat", "amount": "49", "paymentTerm": "in_advance"}
    assert (cards[1]["billingCadence"], cards[1]["price"]["paymentTerm"]) == (None, "in_advance")  # one-time
    assert cards[2]["price"] == {
        "type": "tiered",
        "mode": "graduated",
        "tiers": [
            {
                "upToAmount": "1000000",
                "unitPrice": {"type": "unit", "amount": "0.00001"},
                "flatPrice": {"type": "flat", "amount": "0"},
            },
            {
                "upToAmount": None,
                "unitPrice": {"type": "unit", "amount": "0.000008"},
                "flatPrice": {"type": "flat", "amount": "5"},
            },
        ],
        "minimumAmount": "10",
        "maximumAmount": "5000",
    }
    assert cards[2]["discounts"] == {"percentage": {"percentage": "12.5"}, "usage": {"quantity": "100000"}}
    assert cards[2]["entitlementTemplate"] == {
        "type": "metered",
        "isSoftLimit": False,
        "issueAfterReset": "5000000",
        "usagePeriod": "P1M",
    }
    assert cards[3]["price"] == {
        "type": "package",
        "amount": "1",
        "quantityPerPackage": "100000",
        "minimumAmount": None,
        "maximumAmount": None,
    }
    assert (cards[4]["type"], cards[4]["price"], cards[4]["entitlementTemplate"]) == (
        "flat_fee",
        None,
        {"type": "boolean"},
    )

    assert ok(await api.get(f"/api/v1/plans/{draft['id']}")) == draft
    assert ok(await api.get("/api/v1/plans/pro")) == draft

    body["name"] = "Pro (renamed)"
    del body["key"], body["currency"]
    updated = ok(await api.put("/api/v1/plans/pro", json=body))
    assert (updated["id"], updated["name"]) == (draft["id"], "Pro (renamed)")

    active = ok(await api.post(f"/api/v1/plans/{draft['id']}/publish"))
    assert (active["status"], active["effectiveFrom"]) == ("active", "2026-10-01T12:00:00Z")
    refused(await api.put(f"/api/v1/plans/{draft['id']}", json=body), 409, "status")
    refused(await api.delete(f"/api/v1/plans/{draft['id']}"), 409, "status")
    refused(await api.post(f"/api/v1/plans/{draft['id']}/publish"), 409, "status")

    v2 = ok(await api.post("/api/v1/plans/pro/next"), 201)
    assert (v2["version"], v2["status"], v2["name"]) == (2, "draft", "Pro (renamed)")
    assert v2["phases"] == active["phases"]
    refused(await api.post("/api/v1/plans/pro/next"), 409, "key")  # one draft per key
    assert ok(await api.get("/api/v1/plans/pro"))["version"] == 1  # by key: the published version
    assert ok(await api.get("/api/v1/plans/pro", params={"version": 2}))["id"] == v2["id"]
    assert ok(await api.get("/api/v1/plans/pro", params={"includeLatest": "true"}))["id"] == v2["id"]

    ok(await api.post(f"/api/v1/plans/{v2['id']}/publish"))
    listed = ok(await api.get("/api/v1/plans"))
    assert [(p["version"], p["status"]) for p in listed["items"]] == [(1, "archived"), (2, "active")]
    assert listed["totalCount"] == 2
    only_active = ok(await api.get("/api/v1/plans", params={"status": "active", "key": "pro"}))
    assert [p["version"] for p in only_active["items"]] == [2]
    refused(await api.get("/api/v1/plans", params={"status": "live"}), 400, "status")

    archived = ok(await api.post(f"/api/v1/plans/{v2['id']}/archive"))
    assert (archived["status"], archived["effectiveTo"]) == ("archived", "2026-10-01T12:00:00Z")

    v3 = ok(await api.post("/api/v1/plans/pro/next"), 201)
    assert (await api.delete(f"/api/v1/plans/{v3['id']}")).status_code == 204
    refused(await api.get(f"/api/v1/plans/{v3['id']}"), 404, "plan")


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    """plan_body() with the value at `path` replaced (a key missing from a dict is added; None deletes)."""
    body = plan_body("bad", [copy.deepcopy(unit_card()), tiered_card()])
    node: Any = body
    for step in path[:-1]:
        node = node[step]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


CARD = ["phases", 0, "rateCards", 0]
TIERED = ["phases", 0, "rateCards", 1]
TIER = "phases[0].rateCards[1].price.tiers"
BAD_PLANS: list[tuple[dict[str, Any], int, str]] = [
    (_with(["currency"], "XYZ"), 400, "currency"),
    (_with(["currency"], "usd"), 400, "currency"),
    (_with(["billingCadence"], "monthly"), 400, "billingCadence"),
    (_with(["billingCadence"], "P0D"), 400, "billingCadence"),
    (_with(["phases", 0, "duration"], "P1X"), 400, "phases[0].duration"),
    (_with(["phases"], []), 400, "phases"),
    (_with(["key"], None), 400, "key"),
    (_with(["colour"], "red"), 400, "colour"),
    (_with([*CARD, "price", "amount"], "-0.000003"), 400, "phases[0].rateCards[0].price.amount"),
    (_with([*CARD, "price", "amount"], "three"), 400, "phases[0].rateCards[0].price.amount"),
    (_with([*CARD, "price", "amount"], None), 400, "phases[0].rateCards[0].price.amount"),
    (_with([*CARD, "price", "type"], "magic"), 400, "phases[0].rateCards[0].price.type"),
    (_with([*CARD, "price", "maximumAmount"], "-1"), 400, "phases[0].rateCards[0].price.maximumAmount"),
    (_with([*CARD, "price", "colour"], "red"), 400, "phases[0].rateCards[0].price.colour"),
    (_with([*CARD, "featureKey"], "no-such-feature"), 400, "phases[0].rateCards[0].featureKey"),
    (_with([*CARD, "type"], "usage"), 400, "phases[0].rateCards[0].type"),
    (_with([*CARD, "taxConfig"], {"behavior": "inclusive"}), 400, "phases[0].rateCards[0].taxConfig"),
    (_with([*TIERED, "price", "tiers", 0, "upToAmount"], None), 400, f"{TIER}[0].upToAmount"),
    (
        _with(
            [*TIERED, "price", "tiers"],
            [
                {"upToAmount": "1000", "unitPrice": {"type": "unit", "amount": "1"}},
                {"upToAmount": "500", "unitPrice": {"type": "unit", "amount": "1"}},
                {"unitPrice": {"type": "unit", "amount": "1"}},
            ],
        ),
        400,
        f"{TIER}[1].upToAmount",
    ),  # unordered
    (
        _with(
            [*TIERED, "price", "tiers"],
            [
                {"upToAmount": "1000", "unitPrice": {"type": "unit", "amount": "1"}},
                {"upToAmount": "1000", "unitPrice": {"type": "unit", "amount": "1"}},
                {"unitPrice": {"type": "unit", "amount": "1"}},
            ],
        ),
        400,
        f"{TIER}[1].upToAmount",
    ),  # overlapping
    (
        _with([*TIERED, "price", "tiers", 1, "upToAmount"], "2000000"),
        400,
        f"{TIER}[1].upToAmount",
    ),  # the last tier bounded
    (_with([*TIERED, "price", "tiers", 1, "unitPrice", "amount"], "-1"), 400, f"{TIER}[1].unitPrice.amount"),
    (_with([*TIERED, "price", "mode"], "stairs"), 400, "phases[0].rateCards[1].price.mode"),
    (_with([*TIERED, "price", "minimumAmount"], "6000"), 400, "phases[0].rateCards[1].price.minimumAmount"),
    (
        _with([*TIERED, "discounts", "percentage", "percentage"], 101),
        400,
        "phases[0].rateCards[1].discounts.percentage.percentage",
    ),
    (
        _with([*TIERED, "discounts", "usage", "quantity"], "-5"),
        400,
        "phases[0].rateCards[1].discounts.usage.quantity",
    ),
    (
        _with([*TIERED, "entitlementTemplate", "issueAfterReset"], -1),
        400,
        "phases[0].rateCards[1].entitlementTemplate.issueAfterReset",
    ),
    (
        _with([*TIERED, "entitlementTemplate", "usagePeriod"], "weekly"),
        400,
        "phases[0].rateCards[1].entitlementTemplate.usagePeriod",
    ),
    (
        _with([*TIERED, "entitlementTemplate", "type"], "unlimited"),
        400,
        "phases[0].rateCards[1].entitlementTemplate.type",
    ),
    (
        _with([*CARD, "price"], {"type": "package", "amount": "1", "quantityPerPackage": "0"}),
        400,
        "phases[0].rateCards[0].price.quantityPerPackage",
    ),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_PLANS)
async def test_bad_plan_is_refused_by_field_and_nothing_is_stored(
    api: httpx.AsyncClient, body: dict[str, Any], status: int, field: str
) -> None:
    await features(api)
    refused(await api.post("/api/v1/plans", json=body), status, field)
    assert ok(await api.get("/api/v1/plans"))["totalCount"] == 0


async def test_bad_plan_update_changes_nothing(api: httpx.AsyncClient) -> None:
    await features(api)
    draft = ok(await api.post("/api/v1/plans", json=plan_body()), 201)
    bad = plan_body()
    del bad["key"], bad["currency"]
    bad["phases"][0]["rateCards"][0]["price"]["amount"] = "-1"
    refused(await api.put(f"/api/v1/plans/{draft['id']}", json=bad), 400, "phases[0].rateCards[0].price.amount")
    refused(await api.put(f"/api/v1/plans/{draft['id']}", json={**bad, "currency": "EUR"}), 400, "currency")
    assert ok(await api.get(f"/api/v1/plans/{draft['id']}")) == draft
    refused(await api.get("/api/v1/plans/nope"), 404, "plan")
    refused(await api.post("/api/v1/plans/nope/publish"), 404, "plan")


# -- customers -----------------------------------------------------------------------------------

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


async def test_customer_create_read_list_replace_delete(api: httpx.AsyncClient) -> None:
    created = ok(await api.post("/api/v1/customers", json=ACME), 201)
    assert {k: v for k, v in created.items() if k != "id"} == {
        "key": "acme",
        "name": "Acme Corp",
        "description": "Rockets",
        "metadata": {"tier": "gold"},
        "usageAttribution": {"subjectKeys": ["acme-corp", "acme-batch"]},
        "primaryEmail": "billing@acme.example",
        "currency": "USD",
        "billingAddress": {
            "country": "US",
            "postalCode": "85701",
            "state": None,
            "city": "Tucson",
            "line1": "1 Desert Rd",
            "line2": None,
            "phoneNumber": None,
        },
        "currentSubscriptionId": None,
        "stripeCustomerId": None,
        "managedBy": "api",
        "createdAt": "2026-10-01T12:00:00Z",
        "updatedAt": "2026-10-01T12:00:00Z",
        "deletedAt": None,
    }
    ok(
        await api.post(
            "/api/v1/customers",
            json={"key": "globex", "name": "Globex", "usageAttribution": {"subjectKeys": ["globex"]}},
        ),
        201,
    )
    assert ok(await api.get(f"/api/v1/customers/{created['id']}")) == created
    assert ok(await api.get("/api/v1/customers/acme")) == created
    listed = ok(await api.get("/api/v1/customers"))
    assert (listed["totalCount"], sorted(c["key"] for c in listed["items"])) == (2, ["acme", "globex"])
    by_subject = ok(await api.get("/api/v1/customers", params={"subject": "acme-batch"}))
    assert [c["key"] for c in by_subject["items"]] == ["acme"]
    by_name = ok(await api.get("/api/v1/customers", params={"name": "GLOB", "orderBy": "name"}))
    assert [c["key"] for c in by_name["items"]] == ["globex"]

    replacement = {**ACME, "name": "Acme Corporation", "usageAttribution": {"subjectKeys": ["acme-corp"]}}
    del replacement["description"]
    replacement["stripeCustomerId"] = "cus_123"
    replaced = ok(await api.put("/api/v1/customers/acme", json=replacement))
    assert (replaced["id"], replaced["name"], replaced["description"], replaced["usageAttribution"]) == (
        created["id"],
        "Acme Corporation",
        None,
        {"subjectKeys": ["acme-corp"]},
    )
    again = ok(await api.put("/api/v1/customers/acme", json={**replacement, "stripeCustomerId": None}))
    assert again["stripeCustomerId"] == "cus_123"  # kept when a client does not send it

    # the freed subject can go to another customer now
    ok(
        await api.post(
            "/api/v1/customers",
            json={"key": "batchco", "name": "Batch", "usageAttribution": {"subjectKeys": ["acme-batch"]}},
        ),
        201,
    )

    assert (await api.delete("/api/v1/customers/globex")).status_code == 204
    refused(await api.get("/api/v1/customers/globex"), 404, "customer")
    remaining = ok(await api.get("/api/v1/customers"))
    assert sorted(c["key"] for c in remaining["items"]) == ["acme", "batchco"]
    with_deleted = ok(await api.get("/api/v1/customers", params={"includeDeleted": "true"}))
    assert with_deleted["totalCount"] == 3


BAD_CUSTOMERS: list[tuple[dict[str, Any], int, str]] = [
    ({**ACME, "key": None}, 400, "key"),
    ({**ACME, "name": ""}, 400, "name"),
    ({**ACME, "primaryEmail": "not-an-email"}, 400, "primaryEmail"),
    ({**ACME, "currency": "ABC"}, 400, "currency"),
    ({**ACME, "billingAddress": {"country": "USA"}}, 400, "billingAddress.country"),
    ({**ACME, "billingAddress": {"planet": "Mars"}}, 400, "billingAddress.planet"),
    ({**ACME, "usageAttribution": {"subjectKeys": "acme-corp"}}, 400, "usageAttribution.subjectKeys"),
    ({**ACME, "usageAttribution": {"subjectKeys": [""]}}, 400, "usageAttribution.subjectKeys[0]"),
    ({**ACME, "usageAttribution": {"subjectKeys": ["taken"]}}, 409, "usageAttribution.subjectKeys"),
    ({**ACME, "colour": "red"}, 400, "colour"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_CUSTOMERS)
async def test_bad_customer_is_refused_by_field_and_nothing_is_stored(
    api: httpx.AsyncClient, body: dict[str, Any], status: int, field: str
) -> None:
    ok(
        await api.post(
            "/api/v1/customers", json={"key": "first", "name": "First", "usageAttribution": {"subjectKeys": ["taken"]}}
        ),
        201,
    )
    refused(await api.post("/api/v1/customers", json={k: v for k, v in body.items() if v is not None}), status, field)
    listed = ok(await api.get("/api/v1/customers", params={"includeDeleted": "true"}))
    assert [c["key"] for c in listed["items"]] == ["first"]


async def test_bad_customer_replace_changes_nothing(api: httpx.AsyncClient) -> None:
    ok(
        await api.post(
            "/api/v1/customers", json={"key": "first", "name": "First", "usageAttribution": {"subjectKeys": ["taken"]}}
        ),
        201,
    )
    stored = ok(await api.post("/api/v1/customers", json=ACME), 201)
    refused(
        await api.put("/api/v1/customers/acme", json={**ACME, "usageAttribution": {"subjectKeys": ["taken"]}}),
        409,
        "usageAttribution.subjectKeys",
    )
    refused(await api.put("/api/v1/customers/acme", json={**ACME, "primaryEmail": "x"}), 400, "primaryEmail")
    assert ok(await api.get("/api/v1/customers/acme")) == stored
    refused(await api.put("/api/v1/customers/nobody", json=ACME), 404, "customer")


# -- subscriptions and entitlement values --------------------------------------------------------


async def test_subscription_lifecycle_change_migrate_cancel(env: Env) -> None:
    api = env.client
    await features(api)
    starter = await published(api, plan_body("starter"))
    pro = await published(api, plan_body("pro", [tiered_card()]))
    customer = ok(await api.post("/api/v1/customers", json=ACME), 201)

    sub = ok(await api.post("/api/v1/subscriptions", json={"customerKey": "acme", "plan": {"key": "starter"}}), 201)
    assert {k: v for k, v in sub.items() if k not in ("id", "name")} == {
        "description": None,
        "metadata": None,
        "customerId": customer["id"],
        "plan": {"id": starter["id"], "key": "starter", "version": 1},
        "currency": "USD",
        "billingCadence": "P1M",
        "billingAnchor": "2026-10-01T12:00:00Z",
        "activeFrom": "2026-10-01T12:00:00Z",
        "activeTo": None,
        "status": "active",
        "createdAt": "2026-10-01T12:00:00Z",
        "updatedAt": "2026-10-01T12:00:00Z",
        "deletedAt": None,
    }
    assert ok(await api.get(f"/api/v1/subscriptions/{sub['id']}")) == sub
    assert ok(await api.get("/api/v1/customers/acme"))["currentSubscriptionId"] == sub["id"]
    expanded = ok(await api.get("/api/v1/customers/acme", params={"expand": "subscriptions"}))
    assert [s["id"] for s in expanded["subscriptions"]] == [sub["id"]]
    refused(
        await api.post("/api/v1/subscriptions", json={"customerId": customer["id"], "plan": {"key": "pro"}}),
        409,
        "customer",
    )
    refused(await api.delete("/api/v1/customers/acme"), 409, "customer")

    env.clock.advance(timedelta(days=3))
    change = ok(
        await api.post(
            f"/api/v1/subscriptions/{sub['id']}/change", json={"timing": "immediate", "plan": {"key": "pro"}}
        )
    )
    assert (change["current"]["id"], change["current"]["activeTo"], change["current"]["status"]) == (
        sub["id"],
        "2026-10-04T12:00:00Z",
        "inactive",
    )
    following = change["next"]
    assert (following["plan"], following["activeFrom"], following["status"]) == (
        {"id": pro["id"], "key": "pro", "version": 1},
        "2026-10-04T12:00:00Z",
        "active",
    )

    v2 = ok(await api.post("/api/v1/plans/pro/next"), 201)
    ok(await api.post(f"/api/v1/plans/{v2['id']}/publish"))
    env.clock.advance(timedelta(days=1))
    migrated = ok(await api.post(f"/api/v1/subscriptions/{following['id']}/migrate", json={"timing": "immediate"}))
    assert (migrated["current"]["activeTo"], migrated["next"]["plan"]["version"]) == ("2026-10-05T12:00:00Z", 2)

    canceled = ok(
        await api.post(f"/api/v1/subscriptions/{migrated['next']['id']}/cancel", json={"timing": "next_billing_cycle"})
    )
    # anchored 2026-10-05T12:00Z, monthly: the period ends on 2026-11-05T12:00Z
    assert (canceled["activeTo"], canceled["status"]) == ("2026-11-05T12:00:00Z", "canceled")
    listed = ok(await api.get("/api/v1/customers/acme/subscriptions"))
    assert [s["status"] for s in listed["items"]] == ["inactive", "inactive", "canceled"]
    only = ok(await api.get("/api/v1/customers/acme/subscriptions", params={"status": "canceled"}))
    assert [s["id"] for s in only["items"]] == [canceled["id"]]


async def test_customer_list_filters_by_the_current_plan(env: Env) -> None:
    api = env.client
    await features(api)
    await published(api, plan_body("starter"))
    await published(api, plan_body("pro", [tiered_card()]))
    globex_body = {"key": "globex", "name": "Globex", "usageAttribution": {"subjectKeys": ["globex-app"]}}
    initech_body = {"key": "initech", "name": "Initech", "usageAttribution": {"subjectKeys": ["initech-app"]}}
    acme = ok(await api.post("/api/v1/customers", json=ACME), 201)
    globex = ok(await api.post("/api/v1/customers", json=globex_body), 201)
    ok(await api.post("/api/v1/customers", json=initech_body), 201)  # no subscription
    on_starter = ok(
        await api.post("/api/v1/subscriptions", json={"customerKey": "acme", "plan": {"key": "starter"}}), 201
    )
    on_pro = ok(await api.post("/api/v1/subscriptions", json={"customerKey": "globex", "plan": {"key": "pro"}}), 201)

    starter = ok(await api.get("/api/v1/customers", params={"planKey": "starter"}))
    assert [(c["id"], c["currentSubscriptionId"]) for c in starter["items"]] == [(acme["id"], on_starter["id"])]
    pro = ok(await api.get("/api/v1/customers", params={"planKey": "pro", "expand": "subscriptions"}))
    assert [(c["id"], [s["id"] for s in c["subscriptions"]]) for c in pro["items"]] == [(globex["id"], [on_pro["id"]])]
    everyone = ok(await api.get("/api/v1/customers", params={"orderBy": "name"}))
    assert [(c["key"], c["currentSubscriptionId"]) for c in everyone["items"]] == [
        ("acme", on_starter["id"]),
        ("globex", on_pro["id"]),
        ("initech", None),
    ]
    assert ok(await api.get("/api/v1/customers", params={"planKey": "enterprise"}))["items"] == []


async def test_subscription_description_is_stored_and_carried_by_a_plan_change(env: Env) -> None:
    api = env.client
    await features(api)
    await published(api, plan_body("starter"))
    await published(api, plan_body("pro", [tiered_card()]))
    ok(await api.post("/api/v1/customers", json=ACME), 201)
    body = {"customerKey": "acme", "plan": {"key": "starter"}, "description": "Annual deal, signed by Ann"}
    sub = ok(await api.post("/api/v1/subscriptions", json=body), 201)
    assert sub["description"] == "Annual deal, signed by Ann"
    assert ok(await api.get(f"/api/v1/subscriptions/{sub['id']}"))["description"] == "Annual deal, signed by Ann"
    change = ok(
        await api.post(
            f"/api/v1/subscriptions/{sub['id']}/change", json={"timing": "immediate", "plan": {"key": "pro"}}
        )
    )
    assert change["next"]["description"] == "Annual deal, signed by Ann"
    refused(
        await api.post(
            f"/api/v1/subscriptions/{change['next']['id']}/change",
            json={"timing": "immediate", "plan": {"key": "starter"}, "description": "other"},
        ),
        400,
        "description",
    )


BAD_SUBSCRIPTIONS: list[tuple[dict[str, Any], int, str]] = [
    ({"customerKey": "acme", "plan": {"key": "nope"}}, 404, "plan.key"),
    ({"customerKey": "acme", "plan": {"key": "draft-only"}}, 400, "plan.key"),
    ({"customerKey": "acme", "plan": {"key": "starter", "version": 7}}, 404, "plan.version"),
    ({"customerKey": "acme", "plan": {"key": "starter", "version": "1"}}, 400, "plan.version"),
    ({"customerKey": "nobody", "plan": {"key": "starter"}}, 404, "customer"),
    ({"plan": {"key": "starter"}}, 400, "customerId"),
    ({"customerKey": "acme"}, 400, "plan"),
    ({"customerKey": "acme", "plan": {"key": "starter"}, "timing": "tomorrow"}, 400, "timing"),
    ({"customerKey": "acme", "plan": {"key": "starter"}, "activeFrom": "2026-10-01"}, 400, "activeFrom"),
    ({"customerKey": "acme", "plan": {"key": "starter"}, "startingPhase": "main"}, 400, "startingPhase"),
    ({"customerKey": "acme", "plan": {"key": "starter"}, "colour": "red"}, 400, "colour"),
    ({"customerKey": "acme", "plan": {"key": "starter"}, "description": 7}, 400, "description"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_SUBSCRIPTIONS)
async def test_bad_subscription_is_refused_by_field_and_nothing_is_stored(
    api: httpx.AsyncClient, body: dict[str, Any], status: int, field: str
) -> None:
    await features(api)
    await published(api, plan_body("starter"))
    ok(await api.post("/api/v1/plans", json=plan_body("draft-only")), 201)
    ok(await api.post("/api/v1/customers", json=ACME), 201)
    refused(await api.post("/api/v1/subscriptions", json=body), status, field)
    assert ok(await api.get("/api/v1/customers/acme/subscriptions"))["totalCount"] == 0


async def test_scheduled_subscription_and_bad_timings(env: Env) -> None:
    api = env.client
    await features(api)
    await published(api, plan_body("starter"))
    ok(await api.post("/api/v1/customers", json=ACME), 201)
    sub = ok(
        await api.post(
            "/api/v1/subscriptions",
            json={"customerKey": "acme", "plan": {"key": "starter", "version": 1}, "timing": "2026-12-01T00:00:00Z"},
        ),
        201,
    )
    assert (sub["status"], sub["activeFrom"], sub["billingAnchor"]) == (
        "scheduled",
        "2026-12-01T00:00:00Z",
        "2026-12-01T00:00:00Z",
    )
    refused(await api.post(f"/api/v1/subscriptions/{sub['id']}/cancel", json={"timing": "soon"}), 400, "timing")
    refused(
        await api.post(f"/api/v1/subscriptions/{sub['id']}/change", json={"plan": {"key": "starter"}}), 400, "timing"
    )
    refused(await api.post("/api/v1/subscriptions/nope/cancel", json={}), 404, "subscription")
    refused(await api.get("/api/v1/subscriptions/nope"), 404, "subscription")
    assert ok(await api.get(f"/api/v1/subscriptions/{sub['id']}")) == sub


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


# -- auth and the OpenAPI description ------------------------------------------------------------


async def test_every_catalog_route_refuses_a_wrong_admin_token(env: Env) -> None:
    spec = ok(await env.client.get("/openapi.json"))
    routes = [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if path.startswith(CATALOG_PREFIXES)
        for method in operations
    ]
    assert len(routes) >= 20
    for token in ("wrong", ""):
        for method, path in routes:
            url = path.replace("{", "").replace("}", "")
            response = await env.client.request(method, url, json={}, headers={"authorization": f"Bearer {token}"})
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    assert ok(await env.client.get("/api/v1/features")) == []  # and nothing was created


async def test_openapi_describes_bodies_and_problems(api: httpx.AsyncClient) -> None:
    spec = ok(await api.get("/openapi.json"))
    paths = spec["paths"]
    for path, method in [
        ("/api/v1/features", "post"),
        ("/api/v1/plans", "post"),
        ("/api/v1/plans/{planId}", "put"),
        ("/api/v1/customers", "post"),
        ("/api/v1/customers/{customerIdOrKey}", "put"),
        ("/api/v1/subscriptions", "post"),
        ("/api/v1/subscriptions/{subscriptionId}/change", "post"),
    ]:
        operation = paths[path][method]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema["type"] == "object"
        assert "$ref" not in str(schema)
        assert "application/problem+json" in operation["responses"]["400"]["content"]
    tiers = paths["/api/v1/plans"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "upToAmount" in str(tiers)
    assert "409" in paths["/api/v1/features/{featureId}"]["delete"]["responses"]
    assert "/api/v1/customers/{customerIdOrKey}/entitlements/{featureKey}/value" in paths
    assert "/api/v1/plans/{planIdOrKey}/next" in paths


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
