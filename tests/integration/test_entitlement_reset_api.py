"""POST .../entitlements/{featureKey}/reset through the openmeter SDK (1.0.0b236 calls the /api/v2 customer
path) and over plain HTTP (v1): the value counts usage from the reset, the grant rolls over, the history's
burn-down starts at the reset, and bad resets are 400s naming effectiveAt. Values worked out by hand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openmeter
import pytest

from tests.support.grants_app import TOKEN, grants_app
from tests.support.served import served


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with served(grants_app()) as url:  # its own state: 1200 output tokens on Dec 5, limit 1000, now Dec 15
        yield url


def test_a_reset_starts_a_new_usage_period(base_url: str) -> None:
    client: Any = openmeter.Client(endpoint=base_url, token=TOKEN)
    client.customer_entitlement_v2.create_customer_entitlement_grant(
        "acme", "output-tokens", {"amount": 500, "effectiveAt": "2026-12-01T00:00:00Z"}
    )
    before = client.customer_entitlement.get_customer_entitlement_value("acme", "output-tokens")
    assert (before.usage, before.balance, before.total_available_grant_amount) == (1200, 300, 500)  # 200 of 500

    client.customer_entitlement_v2.reset_customer_entitlement(
        "acme", "output-tokens", {"effectiveAt": "2026-12-10T00:00:00Z"}
    )
    after = client.customer_entitlement.get_customer_entitlement_value("acme", "output-tokens")
    # nothing used since Dec 10; the allowance is 1000 again and the grant rolls over MIN(500, MAX(300, 0)) = 300
    assert (after.has_access, after.usage, after.balance, after.overage) == (True, 0, 1300, 0)
    assert after.total_available_grant_amount == 300
    history = client.customer_entitlement_v2.get_customer_entitlement_history(
        "acme", "output-tokens", window_size="DAY"
    )
    (segment,) = history.burndown_history
    assert (segment.period.from_property.day, segment.usage, segment.balance_at_start) == (10, 0, 1300)

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base_url + "/api/v1", headers=auth) as http:
        (listed,) = http.get("/entitlements").json()
        assert (listed["usagePeriod"], listed["currentUsagePeriod"], listed["lastReset"]) == (
            {"interval": "P1M", "anchor": "2026-12-10T00:00:00Z"},  # the reset moved the anchor (retainAnchor false)
            {"from": "2026-12-10T00:00:00Z", "to": "2027-01-10T00:00:00Z"},
            "2026-12-10T00:00:00Z",
        )
        path = "/customers/acme/entitlements/output-tokens/reset"
        for body in ({"effectiveAt": "2026-12-16T00:00:00Z"}, {"effectiveAt": "2026-12-09T00:00:00Z"}):
            refused = http.post(path, json=body)  # the future; before the last reset
            assert (refused.status_code, refused.json()["field"]) == (400, "effectiveAt"), body
        assert http.post(path, json={"retainAnchor": "yes"}).json()["field"] == "retainAnchor"
        assert http.post("/customers/nobody/entitlements/output-tokens/reset", json={}).status_code == 404
        assert http.post(path, content=b"").status_code == 204  # no body: now, Dec 15
        value = http.get("/customers/acme/entitlements/output-tokens/value").json()
        assert (value["usage"], value["balance"]) == ("0", "1300")
