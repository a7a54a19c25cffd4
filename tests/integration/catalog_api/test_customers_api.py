"""Customers over the management API: create, read, list (filters and order), replace, delete; bad input refused by
field with nothing stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.catalog_api.helpers import ACME, Env, features, ok, plan_body, published, refused, tiered_card


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
