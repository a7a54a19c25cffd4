"""Every catalog route: the admin token is required, and the OpenAPI document describes bodies and problems."""

from __future__ import annotations

import httpx

from tests.integration.catalog_api.helpers import CATALOG_PREFIXES, Env, ok


async def test_every_catalog_route_refuses_a_wrong_admin_token(env: Env) -> None:
    spec = ok(await env.client.get("/openapi.json"))
    routes = [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if path.startswith(CATALOG_PREFIXES)
        for method in operations
    ]
    assert len(routes) >= 20
    for token in ("wrong", ""):
        for method, path in routes:
            url = path.replace("{", "").replace("}", "")
            response = await env.client.request(method, url, json={}, headers={"authorization": f"Bearer {token}"})
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    assert ok(await env.client.get("/api/v1/features")) == []  # and nothing was created


async def test_openapi_describes_bodies_and_problems(api: httpx.AsyncClient) -> None:
    spec = ok(await api.get("/openapi.json"))
    paths = spec["paths"]
    for path, method in [
        ("/api/v1/features", "post"),
        ("/api/v1/plans", "post"),
        ("/api/v1/plans/{planId}", "put"),
        ("/api/v1/customers", "post"),
        ("/api/v1/customers/{customerIdOrKey}", "put"),
        ("/api/v1/subscriptions", "post"),
        ("/api/v1/subscriptions/{subscriptionId}/change", "post"),
    ]:
        operation = paths[path][method]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema["type"] == "object"
        assert "$ref" not in str(schema)
        assert "application/problem+json" in operation["responses"]["400"]["content"]
    tiers = paths["/api/v1/plans"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "upToAmount" in str(tiers)
    assert "409" in paths["/api/v1/features/{featureId}"]["delete"]["responses"]
    assert "/api/v1/customers/{customerIdOrKey}/entitlements/{featureKey}/value" in paths
    assert "/api/v1/plans/{planIdOrKey}/next" in paths
