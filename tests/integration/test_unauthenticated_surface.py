"""What a client without credentials can reach outside the gateway: /metrics (open by default, behind
TOLLWAY_METRICS_TOKEN when set), no redirect built from the Host header, and 405 with `Allow` for methods a
path does not serve. The whole app from the composition root, in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.composed import ADMIN_TOKEN, composed_app
from tollway.cli.serving import start_warnings
from tollway.config.schema import TollwayConfig
from tollway.errors import ConfigError
from tollway.settings import Settings

METRICS_TOKEN = "metrics-0123456789abcdef"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_metrics_are_open_without_a_metrics_token(tmp_path: Path) -> None:
    async with composed_app(tmp_path) as composed:
        response = await composed.client.get("/metrics")
        assert response.status_code == 200
        assert "tollway_events_stored_total" in response.text


async def test_a_metrics_token_closes_metrics_to_everyone_else(tmp_path: Path) -> None:
    async with composed_app(tmp_path, metrics_token=METRICS_TOKEN) as composed:
        for headers in (
            {},
            {"authorization": f"Bearer {METRICS_TOKEN[:-1]}"},
            {"authorization": f"Bearer {METRICS_TOKEN}x"},
            {"authorization": f"Basic {METRICS_TOKEN}"},
            {"authorization": METRICS_TOKEN},
            ADMIN,  # the admin token is not the metrics token
        ):
            refused = await composed.client.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["www-authenticate"] == 'Bearer realm="tollway-metrics"'
            assert "tollway_" not in refused.text
        served = await composed.client.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
        assert served.status_code == 200
        assert served.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert "tollway_events_stored_total" in served.text
        assert (await composed.client.get("/healthz")).status_code == 200  # probes stay open


async def test_a_trailing_slash_is_not_redirected_to_the_host_header(tmp_path: Path) -> None:
    """The framework's slash redirect built `Location: http://<Host header>/...`: a cache or a link generator in
    front of Tollway could be made to point clients at another host. Now the path is simply not found."""
    async with composed_app(tmp_path) as composed:
        for path in ("/api/v1/meters/", "/api/v1/meters/llm_tokens/", "/api/v1/consumers/", "/docs/"):
            response = await composed.client.get(path, headers={**ADMIN, "host": "evil.example"})
            assert response.status_code == 404, path
            assert "location" not in response.headers, path
            assert "evil.example" not in response.text, path
            assert response.headers["content-type"] == "application/problem+json", path


async def test_an_unserved_method_answers_405_with_allow(tmp_path: Path) -> None:
    """`Allow` lists every method the path serves (each method is its own route: the one route the router
    matched on the path alone would list only its own)."""
    async with composed_app(tmp_path) as composed:
        before = await composed.client.get("/api/v1/meters", headers=ADMIN)
        for method, path, allow in (
            ("TRACE", "/api/v1/meters", "GET, POST"),
            ("TRACE", "/api/v1/meters/llm_tokens", "GET, DELETE"),
            ("PUT", "/api/v1/consumers/acme-corp", "GET, PATCH, DELETE"),
            ("OPTIONS", "/api/v1/events", "GET, POST"),
            ("TRACE", "/api/v1/invoices/preview", "GET"),
        ):
            response = await composed.client.request(method, path, headers=ADMIN)
            assert response.status_code == 405, (method, path)
            assert response.headers["allow"] == allow, (method, path)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["status"] == 405
        assert (await composed.client.get("/api/v1/meters", headers=ADMIN)).json() == before.json()


def test_api_docs_takes_one_of_three_values() -> None:
    assert Settings.from_env({}).api_docs == "admin"
    assert Settings.from_env({"TOLLWAY_API_DOCS": "off"}).api_docs == "off"
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"TOLLWAY_API_DOCS": "public"})
    assert raised.value.problems == ["TOLLWAY_API_DOCS: expected one of admin, open, off, got 'public'"]


def test_serve_warns_when_metrics_are_open_beyond_loopback() -> None:
    config = TollwayConfig()
    warned = "TOLLWAY_METRICS_TOKEN is not set: /metrics (models, token counts) answers anyone who reaches 0.0.0.0:9000"
    assert warned in start_warnings(Settings(host="0.0.0.0", port=9000, admin_token="t"), config)
    for quiet in (Settings(admin_token="t"), Settings(host="0.0.0.0", admin_token="t", metrics_token="m")):
        assert not [line for line in start_warnings(quiet, config) if "METRICS" in line]
