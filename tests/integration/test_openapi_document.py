"""The OpenAPI document of the management API describes what the routes take and answer (the composed app,
every router mounted), and the meter route refuses what its schema refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.composed import ADMIN_TOKEN, composed_app

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_the_document_declares_bodies_parameters_problems_and_the_admin_scheme(tmp_path: Path) -> None:
    async with composed_app(tmp_path) as composed:
        spec: dict[str, Any] = (await composed.client.get("/openapi.json", headers=ADMIN)).json()
    assert spec["components"]["securitySchemes"]["adminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer $TOLLWAY_ADMIN_TOKEN`",
    }
    assert spec["security"] == [{"adminToken": []}]
    paths = spec["paths"]
    events = paths["/api/v1/events"]["post"]
    assert set(events["requestBody"]["content"]) == {
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
        "application/json",
    }
    single = events["requestBody"]["content"]["application/cloudevents+json"]["schema"]
    assert single["required"] == ["specversion", "id", "source", "type", "subject"]
    assert {"400", "401", "413", "415", "429"} <= set(events["responses"])
    meter = paths["/api/v1/meters"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert meter["required"] == ["slug", "eventType", "aggregation"]
    query = paths["/api/v1/meters/{slug}/query"]["get"]
    names = {p["name"] for p in query["parameters"]}
    assert names == {
        "slug",
        "from",
        "to",
        "windowSize",
        "windowTimeZone",
        "subject",
        "groupBy",
        "filterGroupBy",
        "customer",
        "page",
        "pageSize",
    }
    assert "409" in paths["/api/v1/meters/{slug}"]["delete"]["responses"]
    webhook = paths["/api/v1/stripe/webhook"]["post"]
    assert webhook["security"] == []
    assert "401" not in webhook["responses"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)  # a validation failure answers 400
            problems = [r for status, r in responses.items() if status.startswith(("4", "5"))]
            assert problems, (method, path)
            for response in problems:
                assert "application/problem+json" in response["content"], (method, path)
            if operation.get("security") != []:
                assert {"401", "429"} <= set(responses), (method, path)
            for parameter in operation.get("parameters", []):
                assert {"type": "null"} not in parameter["schema"].get("anyOf", []), (method, path, parameter)


async def test_a_meter_with_a_falsy_group_by_or_a_non_string_description_is_refused(tmp_path: Path) -> None:
    """`groupBy: false` (or [], "", 0) was read as no dimensions and the meter created; a number as description
    was stored as its text."""
    meter = {"slug": "calls", "eventType": "call", "aggregation": "COUNT"}
    async with composed_app(tmp_path) as composed:
        before = (await composed.client.get("/api/v1/meters", headers=ADMIN)).json()
        for field, value in (("groupBy", False), ("groupBy", []), ("groupBy", ""), ("groupBy", 0), ("description", 7)):
            response = await composed.client.post("/api/v1/meters", json={**meter, field: value}, headers=ADMIN)
            assert response.status_code == 400, (field, value, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["field"] == field
        assert (await composed.client.get("/api/v1/meters", headers=ADMIN)).json() == before
        created = await composed.client.post("/api/v1/meters", json={**meter, "groupBy": None}, headers=ADMIN)
        assert created.status_code == 201, created.text
        assert created.json()["groupBy"] == {}
