"""GET /api/v1/subjects and meter queries grouped by subject, page by page (OpenMeter's page/pageSize).

Without page parameters both keep OpenMeter's shape (a bare array; {from, to, windowSize, data}) up to a
server-side cap; with them, only one page of subjects is read. Large answers are put together and encoded in
a worker thread, not on the event loop. The management app in process over the in-memory store (the store's
own paging is in the contract suite, on SQLite and PostgreSQL too).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import tollway.api.meters
import tollway.api.subjects
import tollway.metering.service
from tollway.adapters.memory.store import MemoryEventStore
from tollway.api.app import create_management_app
from tollway.clock import FrozenClock
from tollway.metering.events import Event
from tollway.metering.meters import Aggregation, Meter
from tollway.metering.service import MeteringService

NOW = datetime(2026, 12, 2, tzinfo=UTC)
TOKEN = "admin-token-subject-pages-01"
SUBJECTS = ["carol", "alice", "erin", "bob", "dave"]  # stored out of order: pages are in key order


@pytest.fixture
async def admin() -> AsyncIterator[httpx.AsyncClient]:
    clock = FrozenClock(NOW)
    metering = MeteringService(MemoryEventStore(clock), clock)
    await metering.sync_meters([Meter("calls", "api.call", Aggregation.SUM, "$.n", managed_by="config")])
    events = [
        Event(f"e{i}", "test", "api.call", subject, NOW - timedelta(hours=1), {"n": i + 1})
        for i, subject in enumerate(SUBJECTS)
    ]
    await metering.insert(events)
    app = create_management_app(metering=metering, admin_token=TOKEN)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://tollway", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        yield client


async def test_subjects_unpaged_are_openmeters_bare_array(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/api/v1/subjects")
    assert response.status_code == 200
    assert [s["key"] for s in response.json()] == ["alice", "bob", "carol", "dave", "erin"]
    assert "link" not in response.headers
    one = await admin.get("/api/v1/subjects/dave")
    assert one.json() == {"id": "dave", "key": "dave", "displayName": None, "firstSeenAt": "2026-12-02T00:00:00Z"}
    assert (await admin.get("/api/v1/subjects/nobody")).status_code == 404


async def test_subjects_page_by_page(admin: httpx.AsyncClient) -> None:
    pages = [(await admin.get("/api/v1/subjects", params={"page": n, "pageSize": 2})).json() for n in (1, 2, 3, 4)]
    assert [[s["key"] for s in page["items"]] for page in pages] == [["alice", "bob"], ["carol", "dave"], ["erin"], []]
    assert {(p["page"], p["pageSize"], p["totalCount"]) for p in pages} == {(1, 2, 5), (2, 2, 5), (3, 2, 5), (4, 2, 5)}
    default = (await admin.get("/api/v1/subjects", params={"page": 1})).json()
    assert (default["pageSize"], len(default["items"])) == (100, 5)  # OpenMeter's default page size
    refused = await admin.get("/api/v1/subjects", params={"pageSize": 1001})
    assert refused.status_code == 400
    assert refused.json()["field"] == "pageSize"


async def test_the_unpaged_subject_list_stops_at_the_cap_and_says_where_to_go_on(
    admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tollway.api.subjects, "MAX_UNPAGED_SUBJECTS", 3)
    response = await admin.get("/api/v1/subjects")
    assert [s["key"] for s in response.json()] == ["alice", "bob", "carol"]
    assert response.headers["x-total-count"] == "5"
    assert response.headers["link"] == '</api/v1/subjects?page=4&pageSize=1>; rel="next"'  # 10,000: page 11 of 1,000


async def test_a_query_grouped_by_subject_page_by_page(admin: httpx.AsyncClient) -> None:
    def query(**params: Any) -> dict[str, Any]:
        return {"groupBy": "subject", **params}

    first = (await admin.get("/api/v1/meters/calls/query", params=query(page=1, pageSize=2))).json()
    second = (await admin.get("/api/v1/meters/calls/query", params=query(page=2, pageSize=2))).json()
    assert [(r["subject"], r["value"]) for r in first["data"]] == [("alice", "2"), ("bob", "4")]
    assert [(r["subject"], r["value"]) for r in second["data"]] == [("carol", "1"), ("dave", "5")]
    assert (first["page"], first["pageSize"], first["totalCount"]) == (1, 2, 5)
    assert set(first) == {"from", "to", "windowSize", "data", "page", "pageSize", "totalCount"}
    named = await admin.get(
        "/api/v1/meters/calls/query", params={**query(page=2, pageSize=1), "subject": ["erin", "bob", "dave"]}
    )
    assert [(r["subject"], r["value"]) for r in named.json()["data"]] == [("dave", "5")]  # bob, dave, erin
    assert named.json()["totalCount"] == 3
    whole = (await admin.get("/api/v1/meters/calls/query", params=query())).json()
    assert set(whole) == {"from", "to", "windowSize", "data"}  # OpenMeter's shape when no page is asked for
    assert len(whole["data"]) == 5
    without_subject = await admin.get("/api/v1/meters/calls/query", params={"page": 1})
    assert without_subject.status_code == 400
    assert without_subject.json()["field"] == "page"


async def test_an_unpaged_query_over_more_subjects_than_the_cap_is_refused(
    admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tollway.api.meters, "MAX_UNPAGED_SUBJECTS", 4)
    refused = await admin.get("/api/v1/meters/calls/query", params={"groupBy": "subject"})
    assert refused.status_code == 400
    assert refused.json()["field"] == "pageSize"
    assert "covers 5 subjects, more than 4" in refused.json()["detail"]
    ungrouped = await admin.get("/api/v1/meters/calls/query")
    assert [r["value"] for r in ungrouped.json()["data"]] == ["15"]  # not grouped by subject: one row
    four = await admin.get("/api/v1/meters/calls/query", params={"groupBy": "subject", "subject": SUBJECTS[:4]})
    assert four.status_code == 200


async def test_a_large_query_is_computed_and_encoded_off_the_event_loop(
    admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    patched = ((tollway.metering.service, "aggregate"), (tollway.metering.service, "assemble"))
    for module, name in (*patched, (tollway.api.meters, "_query_json")):
        original = getattr(module, name)

        def recording(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            threads.append(threading.current_thread().name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, recording)
    monkeypatch.setattr(tollway.metering.service, "OFF_LOOP_ROWS", 4)
    monkeypatch.setattr(tollway.api.meters, "OFF_LOOP_ROWS", 4)
    large = await admin.get("/api/v1/meters/calls/query", params={"groupBy": "subject"})
    assert len(large.json()["data"]) == 5
    main = threading.main_thread().name
    assert len(threads) == 2
    assert main not in threads  # both in worker threads: 5 events and 5 rows are past the (lowered) limit
    threads.clear()
    small = await admin.get("/api/v1/meters/calls/query", params={"groupBy": "subject", "subject": ["bob"]})
    assert len(small.json()["data"]) == 1
    assert threads == [main, main]  # a small answer stays on the loop (a thread hop costs more than it saves)
