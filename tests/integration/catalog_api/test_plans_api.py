"""Plans over the management API: drafts, publish, next version, archive; bad input refused by field with nothing
stored, a refused update changes nothing."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from tests.integration.catalog_api.helpers import features, ok, plan_body, refused, tiered_card, unit_card


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
