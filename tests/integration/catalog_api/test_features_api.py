"""Features over the management API: create, read, list, archive; bad input refused by field with nothing stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.catalog_api.helpers import INPUT, features, ok, plan_body, published, refused


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
