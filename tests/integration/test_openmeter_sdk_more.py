"""The rest of the official openmeter SDK (1.0.0b236) against a running Tollway: event listing with its filters,
a meter query by POST body, a meter's subjects and group-by values, the entitlements list, billing profiles,
and invoicing pending lines (a documented 501 naming the alternative). Usernames with spaces and letters of any
script are subjects and paths like any other; one with "/" is refused when created."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openmeter
import pytest
from corehttp.exceptions import HttpResponseError

from tests.support.net import wait_until
from tests.support.tollway_process import ADMIN_TOKEN, TollwayProcess

ZOE = "Zoë Doe"
CONFIG: dict[str, Any] = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [
        {"username": "acme-corp", "keys": ["acme-secret-key"]},
        {"username": ZOE, "keys": ["zoe-secret-key"]},
    ],
    "features": [{"key": "output-tokens", "meter": "llm_tokens", "filters": {"type": "output"}}],
    "plans": [
        {
            "key": "capped",
            "name": "Capped",
            "currency": "USD",
            "billing_cadence": "P1M",
            "rate_cards": [
                {
                    "feature": "output-tokens",
                    "price": {"type": "unit", "amount": "0.00001"},
                    "entitlement": {"type": "metered", "limit": "1000", "hard": True},
                }
            ],
        }
    ],
    "customers": [
        {"key": "acme", "name": "Acme", "usage_from": ["acme-corp", ZOE], "subscription": {"plan": "capped"}}
    ],
}


@pytest.fixture(scope="module")
def tollway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TollwayProcess]:
    process = TollwayProcess(tmp_path_factory.mktemp("openmeter-sdk-more"), CONFIG).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(tollway: TollwayProcess) -> Any:
    return openmeter.Client(endpoint=tollway.base_url, token=ADMIN_TOKEN)


@pytest.fixture(scope="module")
def ingested(client: Any) -> datetime:
    """Five llm.tokens events an hour ago (two subjects, two token types); returns their time."""
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    rows = [("acme-corp", "input", 10), ("acme-corp", "output", 20), (ZOE, "input", 5), (ZOE, "output", 7)]
    events = [
        {
            "specversion": "1.0",
            "id": f"more-{i}",
            "source": "sdk-more",
            "type": "llm.tokens",
            "subject": subject,
            "time": (at + timedelta(seconds=i)).isoformat(),
            "data": {"tokens": tokens, "type": kind, "model": "demo", "provider": "local", "status_code": 200},
        }
        for i, (subject, kind, tokens) in enumerate(rows)
    ]
    old = {**events[0], "id": "more-old", "time": (at - timedelta(days=10)).isoformat()}
    client.events.ingest_events([*events, old])
    return at


def test_events_list_with_openmeters_filters(client: Any, ingested: datetime) -> None:
    recent = client.events.list()  # from: the last 72 hours by default
    assert [e.event.id for e in recent] == ["more-3", "more-2", "more-1", "more-0"]  # newest first
    assert recent[0].event.subject == ZOE
    assert recent[0].event.data == {
        "tokens": 7,
        "type": "output",
        "model": "demo",
        "provider": "local",
        "status_code": 200,
    }
    assert recent[0].ingested_at is not None
    zoe = client.events.list(subject=ZOE, limit=1)
    assert [e.event.id for e in zoe] == ["more-3"]
    older = client.events.list(from_parameter=ingested - timedelta(days=11), to=ingested, customer_id=["acme"])
    assert [e.event.id for e in older] == ["more-old"]
    assert [e.event.id for e in client.events.list(id="more-1")] == ["more-1"]
    with pytest.raises(HttpResponseError) as too_many:
        client.events.list(limit=101)
    assert too_many.value.status_code == 400


def test_meter_query_by_body_subjects_and_group_by_values(client: Any, ingested: datetime) -> None:
    since = ingested - timedelta(minutes=1)
    result = client.meters.query(
        "llm_tokens",
        {"from": since.isoformat(), "groupBy": ["subject", "type"], "filterGroupBy": {"type": ["output"]}},
    )
    assert sorted((row.subject, row.group_by["type"], row.value) for row in result.data) == [
        (ZOE, "output", 7),  # "Z" sorts before "a"
        ("acme-corp", "output", 20),
    ]
    one = client.meters.query("llm_tokens", {"from": since.isoformat(), "subject": [ZOE]})
    assert [row.value for row in one.data] == [12]
    assert client.meters.list_subjects("llm_tokens", from_parameter=since) == [ZOE, "acme-corp"]
    assert client.meters.list_subjects("llm_tokens", from_parameter=ingested + timedelta(hours=1)) == []
    assert client.meters.list_group_by_values("llm_tokens", "type", from_parameter=since) == ["input", "output"]
    with pytest.raises(HttpResponseError) as unknown:
        client.meters.list_group_by_values("llm_tokens", "colour")
    assert unknown.value.status_code == 404


def plain(value: Any) -> Any:
    return value if isinstance(value, dict) else value.as_dict()


def test_entitlements_and_billing_profiles(client: Any) -> None:
    listed = [plain(e) for e in client.entitlements.list()]  # the SDK hands the list's items over as dicts
    assert sorted((e["subjectKey"], e["featureKey"], e["type"]) for e in listed) == [
        (ZOE, "output-tokens", "metered"),
        ("acme-corp", "output-tokens", "metered"),
    ]
    assert {(e["isSoftLimit"], e["issueAfterReset"]) for e in listed} == {(False, "1000")}
    assert len({e["id"] for e in listed}) == 2
    assert [plain(e)["subjectKey"] for e in client.entitlements.list(subject=[ZOE])] == [ZOE]
    paged = plain(client.entitlements.list(page=1, page_size=1))
    assert (paged["totalCount"], len(paged["items"])) == (2, 1)
    profiles = client.billing_profiles.list()
    assert [(p.id, p.default, p.supplier.name) for p in profiles["items"]] == [("default", True, "Tollway")]
    assert client.billing_profiles.get("default").workflow.invoicing.due_after == "P30D"


def test_invoicing_pending_lines_is_a_problem_naming_the_alternative(client: Any) -> None:
    with pytest.raises(HttpResponseError) as caught:
        client.invoices.invoice_pending_lines_action({"customerId": "acme"})
    assert caught.value.status_code == 501
    assert "/api/v1/invoices/preview" in str(caught.value)


def test_usernames_with_spaces_and_any_script_are_addressable_and_slashes_refused(tollway: TollwayProcess) -> None:
    with tollway.admin() as admin:
        created = admin.post("/api/v1/consumers", json={"username": "山田 太郎"})
        assert created.status_code == 201, created.text
        assert admin.get("/api/v1/consumers/%E5%B1%B1%E7%94%B0%20%E5%A4%AA%E9%83%8E").json()["username"] == "山田 太郎"
        assert admin.get(f"/api/v1/consumers/{ZOE}").status_code == 200  # the config's, by its name
        refused = admin.post("/api/v1/consumers", json={"username": "team/a"})
        assert refused.status_code == 400
        assert refused.json()["field"] == "username"
        assert admin.delete("/api/v1/consumers/山田 太郎").status_code == 204
    # Zoë's gateway calls are metered under her name and found by it
    before = tollway.tokens_by_type(ZOE).get("output", 0)
    with httpx.Client(base_url=tollway.base_url, timeout=10) as http:
        # max_tokens: the hard entitlement (1000 output tokens) holds a call's worst case before it runs
        body = {"model": "demo", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 30}
        answer = http.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer zoe-secret-key"})
        assert answer.status_code == 200
    told = answer.json()["usage"]["completion_tokens"]
    wait_until(lambda: tollway.tokens_by_type(ZOE).get("output", 0) == before + told, timeout_s=10)
