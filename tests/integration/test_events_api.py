"""The management API's metering endpoints against a running Tollway: events, meters, queries, subjects."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openmeter
import pytest

from tests.support.net import wait_until
from tests.support.tollway_process import ADMIN_TOKEN, TollwayProcess

BATCH = "application/cloudevents-batch+json"
SINGLE = "application/cloudevents+json"
CONFIG: dict[str, Any] = {
    "meters": [
        {
            "slug": "tool_calls",
            "event_type": "agent.tool_call",
            "aggregation": "SUM",
            "value_property": "$.calls",
            "group_by": {"tool": "$.tool"},
        }
    ]
}


@pytest.fixture(scope="module")
def tollway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TollwayProcess]:
    process = TollwayProcess(tmp_path_factory.mktemp("events"), CONFIG).start()
    yield process
    process.stop()


@pytest.fixture
def admin(tollway: TollwayProcess) -> Iterator[httpx.Client]:
    with tollway.admin() as client:
        yield client


def event(event_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "test-suite",
        "type": "agent.tool_call",
        "subject": "acme",
        "time": "2026-10-05T10:15:00Z",
        "data": {"calls": 2, "tool": "search"},
        **overrides,
    }


def post(client: httpx.Client, body: Any, content_type: str = BATCH) -> httpx.Response:
    import orjson

    return client.post("/api/v1/events", content=orjson.dumps(body), headers={"content-type": content_type})


def total(client: httpx.Client, meter: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/meters/{meter}/query", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def test_single_batch_and_plain_json_ingest_and_dedup(admin: httpx.Client) -> None:
    assert post(admin, event("s1", subject="single"), SINGLE).status_code == 204
    response = post(admin, [event("s2", subject="single"), event("s3", subject="single")])
    assert response.status_code == 204
    assert response.headers["tollway-events-stored"] == "2"
    assert post(admin, event("s4", subject="single"), "application/json").status_code == 204
    again = post(admin, [event("s2", subject="single"), event("s3", subject="single")])
    assert again.status_code == 204
    assert again.headers["tollway-events-stored"] == "0"
    rows = total(admin, "tool_calls", subject="single")
    assert [r["value"] for r in rows] == ["8"]


def test_concurrent_duplicate_submissions_count_once(tollway: TollwayProcess) -> None:
    batch = [event(f"c{i}", subject="concurrent") for i in range(200)]
    results: list[int] = []

    def send() -> None:
        with tollway.admin() as client:
            results.append(post(client, batch).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [204] * 6
    with tollway.admin() as client:
        assert [r["value"] for r in total(client, "tool_calls", subject="concurrent")] == ["400"]


def test_same_id_different_content_is_kept_once_and_counted(tollway: TollwayProcess, admin: httpx.Client) -> None:
    assert post(admin, [event("x1", subject="conflict")]).status_code == 204
    assert post(admin, [event("x1", subject="conflict", data={"calls": 50, "tool": "search"})]).status_code == 204
    assert [r["value"] for r in total(admin, "tool_calls", subject="conflict")] == ["2"]
    metrics = httpx.get(tollway.base_url + "/metrics").text
    line = next(m for m in metrics.splitlines() if m.startswith("tollway_events_conflicts_total "))
    assert float(line.split()[-1]) >= 1


BAD_EVENTS: list[tuple[dict[str, Any], str]] = [
    ({"specversion": None}, "specversion"),
    ({"specversion": "0.3"}, "specversion"),
    ({"id": None}, "id"),
    ({"id": ""}, "id"),
    ({"id": 5}, "id"),
    ({"id": "x" * 256}, "id"),
    ({"source": None}, "source"),
    ({"type": None}, "type"),
    ({"subject": None}, "subject"),
    ({"subject": "  "}, "subject"),
    ({"time": "yesterday"}, "time"),
    ({"time": "2026-10-05T10:15:00"}, "time"),
    ({"time": 1700000000}, "time"),
    ({"time": "FUTURE"}, "time"),  # 10 minutes after the request, computed when the test runs
    ({"data": [1, 2]}, "data"),
    ({"data": "text"}, "data"),
    ({"datacontenttype": "application/xml"}, "datacontenttype"),
]


@pytest.mark.parametrize(("change", "field"), BAD_EVENTS)
def test_bad_field_is_rejected_with_its_name_and_nothing_is_stored(
    admin: httpx.Client, change: dict[str, Any], field: str
) -> None:
    good = event("bad-good", subject="badinput")
    if change.get("time") == "FUTURE":
        change = {"time": (datetime.now(UTC) + timedelta(minutes=10)).isoformat()}
    bad = {k: v for k, v in {**event("bad-1", subject="badinput"), **change}.items() if v is not None}
    response = post(admin, [good, bad])
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert [e["field"] for e in body["errors"]] == [f"[1].{field}"]
    assert total(admin, "tool_calls", subject="badinput") == []  # all-or-nothing


def test_late_events_are_accepted_in_their_own_window(admin: httpx.Client) -> None:
    assert post(admin, [event("late1", subject="late", time="2025-01-15T08:00:00Z")]).status_code == 204
    rows = total(admin, "tool_calls", subject="late", windowSize="MONTH", **{"from": "2025-01-01T00:00:00Z"})
    assert [(r["windowStart"], r["value"]) for r in rows] == [("2025-01-01T00:00:00Z", "2")]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", BATCH, 400),
        (b"[]", BATCH, 400),
        (b'{"a": 1}', BATCH, 400),
        (b"[1]", SINGLE, 400),
        (b"<xml/>", "application/xml", 415),
    ],
)
def test_bad_bodies(admin: httpx.Client, body: bytes, content_type: str, status: int) -> None:
    response = admin.post("/api/v1/events", content=body, headers={"content-type": content_type})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


def test_oversized_body_is_413(admin: httpx.Client) -> None:
    huge = [event(f"big{i}", data={"calls": 1, "pad": "x" * 1000}) for i in range(5000)]
    assert post(admin, huge).status_code == 413


def test_events_need_the_admin_token(tollway: TollwayProcess) -> None:
    response = httpx.post(tollway.base_url + "/api/v1/events", json=event("noauth"))
    assert response.status_code == 401


def test_meter_crud_backfills_and_protects_built_ins(admin: httpx.Client) -> None:
    post(admin, [event(f"m{i}", subject="crud", data={"calls": i, "tool": "t"}) for i in range(1, 5)])
    created = admin.post(
        "/api/v1/meters",
        json={"slug": "calls_max", "eventType": "agent.tool_call", "aggregation": "MAX", "valueProperty": "$.calls"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["managedBy"] == "api"
    assert [r["value"] for r in total(admin, "calls_max", subject="crud")] == ["4"]
    assert (
        admin.post("/api/v1/meters", json={"slug": "calls_max", "eventType": "e", "aggregation": "COUNT"}).status_code
        == 409
    )
    for bad, field in [
        ({"eventType": "e", "aggregation": "COUNT"}, "slug"),
        ({"slug": "Bad Slug", "eventType": "e", "aggregation": "COUNT"}, "slug"),
        ({"slug": "a", "eventType": "e", "aggregation": "MEDIAN"}, "aggregation"),
        ({"slug": "a", "eventType": "e", "aggregation": "SUM"}, "valueProperty"),
        ({"slug": "a", "eventType": "e", "aggregation": "SUM", "valueProperty": "tokens"}, "valueProperty"),
        ({"slug": "a", "eventType": "e", "aggregation": "COUNT", "groupBy": {"subject": "$.x"}}, "groupBy"),
        ({"slug": "a", "eventType": "e", "aggregation": "COUNT", "extra": 1}, "extra"),
    ]:
        response = admin.post("/api/v1/meters", json=bad)
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["field"] == field, (bad, response.json())
    assert admin.delete("/api/v1/meters/llm_tokens").status_code == 409
    assert admin.delete("/api/v1/meters/tool_calls").status_code == 409
    assert admin.delete("/api/v1/meters/calls_max").status_code == 204
    assert admin.get("/api/v1/meters/calls_max").status_code == 404
    slugs = {m["slug"] for m in admin.get("/api/v1/meters").json()}
    assert {"llm_tokens", "llm_requests", "tool_calls"} <= slugs


def test_a_meter_created_or_deleted_applies_to_the_next_ingest_at_once(admin: httpx.Client) -> None:
    """Ingest checks values against a cached meter list: a change through the API drops it before answering."""
    huge = {"gauge": 1e300}
    kind = {"type": "probe.gauge", "subject": "cache"}
    assert post(admin, event("gauge-1", **kind, data=huge), SINGLE).status_code == 204  # no meter reads it yet
    created = admin.post(
        "/api/v1/meters",
        json={"slug": "gauge_sum", "eventType": "probe.gauge", "aggregation": "SUM", "valueProperty": "$.gauge"},
    )
    assert created.status_code == 201, created.text
    refused = post(admin, event("gauge-2", **kind, data=huge), SINGLE)
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == "data.gauge"
    assert "meter gauge_sum" in refused.json()["detail"]
    assert admin.delete("/api/v1/meters/gauge_sum").status_code == 204
    assert post(admin, event("gauge-2", **kind, data=huge), SINGLE).status_code == 204


def test_ingest_refuses_a_nul_in_the_query_and_stores_nothing(admin: httpx.Client) -> None:
    """The ingest route (answered outside FastAPI's routing) keeps the management API's request-line check."""
    import orjson

    body = orjson.dumps(event("nul-query", subject="nul-query"))
    refused = admin.post("/api/v1/events?note=a%00b", content=body, headers={"content-type": SINGLE})
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == "note"
    assert admin.get("/api/v1/events", params={"id": "nul-query"}).json() == []


def test_query_windows_groups_filters_and_csv(admin: httpx.Client) -> None:
    post(
        admin,
        [
            event("q1", subject="q", time="2026-03-08T04:30:00Z", data={"calls": 1, "tool": "a"}),
            event("q2", subject="q", time="2026-03-08T05:30:00Z", data={"calls": 2, "tool": "b"}),
            event("q3", subject="q", time="2026-03-09T03:59:00Z", data={"calls": 4, "tool": "a"}),
            event("q4", subject="q", time="2026-03-09T04:00:00Z", data={"calls": 8, "tool": "a"}),
        ],
    )
    params: dict[str, Any] = {
        "subject": "q",
        "windowSize": "DAY",
        "windowTimeZone": "America/New_York",
        "from": "2026-03-07T05:00:00Z",
        "to": "2026-03-10T04:00:00Z",
    }
    rows = total(admin, "tool_calls", **params)
    # New York's DST starts 2026-03-08: that day is 23 hours long.
    assert [(r["windowStart"], r["windowEnd"], r["value"]) for r in rows] == [
        ("2026-03-07T05:00:00Z", "2026-03-08T05:00:00Z", "1"),
        ("2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z", "6"),
        ("2026-03-09T04:00:00Z", "2026-03-10T04:00:00Z", "8"),
    ]
    grouped = total(admin, "tool_calls", **{**params, "groupBy": "tool", "filterGroupBy[tool]": "a"})
    assert [(r["groupBy"], r["value"]) for r in grouped] == [
        ({"tool": "a"}, "1"),
        ({"tool": "a"}, "4"),
        ({"tool": "a"}, "8"),
    ]
    csv = admin.get(
        "/api/v1/meters/tool_calls/query", params={**params, "groupBy": "tool"}, headers={"accept": "text/csv"}
    )
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == "window_start,window_end,subject,tool,value"
    assert lines[1] == "2026-03-07T05:00:00Z,2026-03-08T05:00:00Z,q,a,1"
    assert len(lines) == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-01-01"}, "to"),
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ({"windowSize": "WEEK"}, "windowSize"),
        ({"windowTimeZone": "Mars/Olympus"}, "windowTimeZone"),
        ({"groupBy": "nope"}, "groupBy"),
        ({"filterGroupBy[nope]": "x"}, "groupBy"),
        ({"filterGroupBy": "novalue"}, "filterGroupBy"),
        ({"filterGroupBy": "{'tool': 5}"}, "filterGroupBy"),
        ({"filterGroupBy": "{broken"}, "filterGroupBy"),
        ({"subject": ""}, "subject"),
        ({"customer": "acme"}, "customer"),
    ],
)
def test_bad_query_parameters(admin: httpx.Client, params: dict[str, str], field: str) -> None:
    response = admin.get("/api/v1/meters/tool_calls/query", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


def test_unknown_meter_is_404(admin: httpx.Client) -> None:
    response = admin.get("/api/v1/meters/nope/query")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_subjects_listed_on_first_sight(admin: httpx.Client) -> None:
    post(admin, [event("subj1", subject="brand-new-subject")])
    keys = [s["key"] for s in admin.get("/api/v1/subjects").json()]
    assert "brand-new-subject" in keys
    assert admin.get("/api/v1/subjects/brand-new-subject").json()["key"] == "brand-new-subject"
    assert admin.get("/api/v1/subjects/never-seen").status_code == 404


def test_openmeter_sdk_ingests_defines_and_queries(tollway: TollwayProcess) -> None:
    client = openmeter.Client(endpoint=tollway.base_url, token=ADMIN_TOKEN)
    client.events.ingest_event(
        {
            "specversion": "1.0",
            "id": "sdk-1",
            "source": "sdk",
            "type": "doc.parsed",
            "subject": "sdk-customer",
            "time": "2026-10-01T09:00:00Z",
            "data": {"pages": 12, "format": "pdf"},
        }
    )
    client.events.ingest_events(
        [
            {
                "specversion": "1.0",
                "id": f"sdk-{i}",
                "source": "sdk",
                "type": "doc.parsed",
                "subject": "sdk-customer",
                "time": "2026-10-02T09:00:00Z",
                "data": {"pages": i, "format": "docx" if i % 2 else "pdf"},
            }
            for i in range(2, 6)
        ]
    )
    meter = client.meters.create(
        {
            "slug": "pages",
            "eventType": "doc.parsed",
            "aggregation": "SUM",
            "valueProperty": "$.pages",
            "groupBy": {"format": "$.format"},
        }
    )
    assert meter.slug == "pages"
    result = client.meters.query_json(
        "pages",
        subject=["sdk-customer"],
        window_size="DAY",
        group_by=["format"],
        from_parameter=datetime(2026, 10, 1, tzinfo=UTC),
        to=datetime(2026, 10, 3, tzinfo=UTC),
    )
    got = [(r.window_start.day, r.group_by["format"], r.value) for r in result.data]
    assert got == [(1, "pdf", 12.0), (2, "docx", 8.0), (2, "pdf", 6.0)]
    assert result.window_size == "DAY"
    filtered = client.meters.query_json("pages", subject=["sdk-customer"], filter_group_by={"format": "pdf"})
    assert [r.value for r in filtered.data] == [18.0]
    assert "pages" in [m.slug for m in client.meters.list()]


def test_rollup_worker_catches_up_and_answers_stay_equal(tollway: TollwayProcess, admin: httpx.Client) -> None:
    post(admin, [event(f"w{i}", subject="worker", data={"calls": i, "tool": "t"}) for i in range(100)])
    before = total(admin, "tool_calls", subject="worker", windowSize="HOUR")

    def rolled() -> float:
        metrics = httpx.get(tollway.base_url + "/metrics").text
        line = next(m for m in metrics.splitlines() if m.startswith("tollway_rollup_events_total "))
        return float(line.split()[-1])

    wait_until(lambda: rolled() >= 100, timeout_s=10)
    assert total(admin, "tool_calls", subject="worker", windowSize="HOUR") == before
    assert [r["value"] for r in before] == [str(sum(range(100)))]


def test_cli_usage_prints_the_same_as_a_table(tollway: TollwayProcess, admin: httpx.Client) -> None:
    post(admin, [event("cli1", subject="cli", data={"calls": 3, "tool": "search"})])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tollway",
            "usage",
            "tool_calls",
            "--subject",
            "cli",
            "--group-by",
            "tool",
            "--window",
            "DAY",
        ],
        env={**tollway.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "2026-10-05T00:00:00Z" in result.stdout
    assert "search" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "search" in line)
    assert row.rstrip(" │|").split()[-1] == "3"
    bad = subprocess.run(
        [sys.executable, "-m", "tollway", "usage", "tool_calls", "--group-by", "nope"],
        env=tollway.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "groupBy" in bad.stderr
