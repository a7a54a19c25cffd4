"""Subscriptions over the management API: create, change, migrate, cancel, scheduled starts; bad input refused by
field with nothing stored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.integration.catalog_api.helpers import ACME, Env, features, ok, plan_body, published, refused, tiered_card


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
