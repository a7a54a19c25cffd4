"""OpenMeter's unit grants through the openmeter SDK (1.0.0b236) against Tollway's management app: the SDK
creates grants on a customer's metered entitlement (its v2 customer path) and on a subject (v1), lists them,
reads the entitlement value (totalAvailableGrantAmount, balance, hasAccess counting grants), the burn-down
history with grantUsages, and voids a grant with DELETE /api/v1/grants/{id}. Values worked out by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import openmeter
import pytest

from tests.support.grants_app import TOKEN, grants_app
from tests.support.served import served


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with served(grants_app()) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Any:
    return openmeter.Client(endpoint=base_url, token=TOKEN)


def test_grants_through_the_openmeter_sdk(client: Any) -> None:
    first = client.customer_entitlement_v2.create_customer_entitlement_grant(
        "acme",
        "output-tokens",
        {"amount": 500, "priority": 1, "effectiveAt": "2026-12-01T00:00:00Z", "metadata": {"reason": "bonus"}},
    )
    assert (first.amount, first.priority, first.metadata) == (500, 1, {"reason": "bonus"})
    second = client.customer_entitlement_v2.create_customer_entitlement_grant(
        "acme",
        "output-tokens",
        {
            "amount": 300,
            "priority": 2,
            "effectiveAt": "2026-12-01T00:00:00Z",
            "expiration": {"duration": "MONTH", "count": 1},
        },
    )
    assert second.expires_at == datetime(2027, 1, 1, tzinfo=UTC)
    listed = client.customer_entitlement_v2.get_grants("acme", "output-tokens")
    assert sorted(g.id for g in listed.items_property) == sorted([first.id, second.id])

    value = client.customer_entitlement.get_customer_entitlement_value("acme", "output-tokens")
    # 1200 used: the allowance's 1000, then 200 of the priority-1 grant; left 300 + 300
    assert (value.has_access, value.usage, value.balance, value.overage) == (True, 1200, 600, 0)
    assert value.total_available_grant_amount == 800  # 500 + 300

    history = client.customer_entitlement_v2.get_customer_entitlement_history(
        "acme", "output-tokens", window_size="DAY"
    )
    assert len(history.windowed_history) == 14  # December 1 to 15
    assert [(w.usage, w.balance_at_start) for w in history.windowed_history[3:6]] == [(0, 1800), (1200, 1800), (0, 600)]
    (segment,) = history.burndown_history
    assert (segment.usage, segment.balance_at_start, segment.balance_at_end) == (1200, 1800, 600)
    assert [(u.grant_id, u.usage) for u in segment.grant_usages] == [(first.id, 200)]

    client.grants.delete(first.id)
    after = client.customer_entitlement.get_customer_entitlement_value("acme", "output-tokens")
    # voided now, not retroactively (OpenMeter): the 200 it paid on December 5 stay paid by it, its 300 left
    # are gone; the other grant's 300 remain. Available from grants: 200 + 300
    assert (after.has_access, after.balance, after.total_available_grant_amount) == (True, 300, 500)


def test_the_subject_route_and_bad_grants(base_url: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    base = base_url + "/api/v1"
    with httpx.Client(base_url=base, headers=auth) as http:
        made = http.post(
            "/subjects/acme-agent/entitlements/output-tokens/grants",
            json={"amount": "50", "effectiveAt": "2026-12-10T00:00:00Z", "recurrence": {"interval": "WEEK"}},
        )
        assert made.status_code == 201
        assert (made.json()["amount"], made.json()["recurrence"]) == (
            "50",
            {"interval": "P1W", "anchor": "2026-12-10T00:00:00Z"},
        )
        listed = http.get("/subjects/acme-agent/entitlements/output-tokens/grants").json()
        assert made.json()["id"] in [g["id"] for g in listed]
        for body, field in [
            ({"amount": "0", "effectiveAt": "2026-12-10T00:00:00Z"}, "amount"),
            ({"amount": "5"}, "effectiveAt"),
            ({"amount": "5", "effectiveAt": "2026-12-10T00:00:00Z", "priority": 300}, "priority"),
            (
                {"amount": "5", "effectiveAt": "2026-12-10T00:00:00Z", "expiration": {"duration": "AGE", "count": 1}},
                "expiration.duration",
            ),
            (
                {"amount": "5", "effectiveAt": "2026-12-10T00:00:00Z", "recurrence": {"interval": "sometimes"}},
                "recurrence.interval",
            ),
        ]:
            refused = http.post("/customers/acme/entitlements/output-tokens/grants", json=body)
            assert refused.status_code == 400, body
            assert refused.json()["field"] == field
        assert http.post("/subjects/nobody/entitlements/output-tokens/grants", json={}).status_code == 404
        assert http.delete("/grants/01NOPE").status_code == 404
