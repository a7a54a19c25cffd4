"""Fail-open or fail-closed per limit (`on_redis_failure`), with the counters in a real Redis made unreachable
(a proxy taken down): a call is refused (503 limits_unavailable) if any of its limits is closed, admitted
unchecked if all are open; a limit that says nothing follows TOLLWAY_SPEND_REDIS_FAILURE. The field through the
API (create, read, update, back to the default) and a bad value in the API and in the config file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.in_process import in_process
from tests.support.tcp_proxy import TcpProxy
from tollway.config.loader import parse_config
from tollway.errors import ConfigError

ADMIN = "admin-failure-token"
USERS = ("mixed", "lenient", "plain")


def config() -> dict[str, Any]:
    def budget(user: str, failure: str | None) -> dict[str, Any]:
        found = {"key": f"{user}-day", "consumer": user, "kind": "tokens", "limit": "100000", "window": "day"}
        return found if failure is None else {**found, "on_redis_failure": failure}

    def rate(user: str, failure: str | None) -> dict[str, Any]:
        found = {"key": f"{user}-rpm", "consumer": user, "metric": "requests", "limit": "1000", "window": "minute"}
        return found if failure is None else {**found, "on_redis_failure": failure}

    return {
        "providers": [{"name": "local", "type": "simulator"}],
        "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
        "consumers": [{"username": user, "keys": [f"{user}-secret-key"]} for user in USERS],
        # mixed: an open budget and a closed rate limit; lenient: both open; plain: neither says (the default)
        "budgets": [budget("mixed", "open"), budget("lenient", "open"), budget("plain", None)],
        "rate_limits": [rate("mixed", "closed"), rate("lenient", "open"), rate("plain", None)],
    }


@pytest.mark.parametrize("default", ["closed", "open"])
async def test_any_closed_limit_refuses_and_all_open_admit(tmp_path: Path, redis_prefix: str, default: str) -> None:
    proxy = TcpProxy("127.0.0.1", 6379).up()
    try:
        async with (
            in_process(
                tmp_path,
                config(),
                redis_url=f"redis://127.0.0.1:{proxy.port}/0",
                spend_redis_prefix=redis_prefix,
                spend_redis_timeout_s=0.2,
                spend_redis_failure=default,
            ) as tollway,
            tollway.http() as http,
        ):
            body = {"model": "demo", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}

            async def status(user: str) -> int:
                headers = {"authorization": f"Bearer {user}-secret-key"}
                answer = await http.post("/v1/chat/completions", json=body, headers=headers)
                if answer.status_code == 503:
                    assert answer.json()["error"]["code"] == "limits_unavailable"
                return answer.status_code

            assert [await status(user) for user in USERS] == [200, 200, 200]
            proxy.down()
            assert await status("mixed") == 503  # the budget is open, the rate limit closed: refused
            assert await status("lenient") == 200  # both open: admitted unchecked
            assert await status("plain") == (503 if default == "closed" else 200)  # the process default
            proxy.up()
            for user in USERS:  # back within a few calls (the first may spend its time on a dead pooled connection)
                statuses = [await status(user)]
                while statuses[-1] != 200 and len(statuses) < 10:
                    await asyncio.sleep(0.2)
                    statuses.append(await status(user))
                assert statuses[-1] == 200, statuses
    finally:
        proxy.close()


async def test_the_field_through_the_api(tmp_path: Path) -> None:
    headers = {"authorization": f"Bearer {ADMIN}"}
    async with in_process(tmp_path, config(), admin_token=ADMIN) as tollway, tollway.http() as api:
        read = (await api.get("/api/v1/budgets/mixed-day", headers=headers)).json()
        assert read["onRedisFailure"] == "open"  # from the config file
        assert (await api.get("/api/v1/rate-limits/plain-rpm", headers=headers)).json()["onRedisFailure"] is None
        made = await api.post(
            "/api/v1/budgets",
            headers=headers,
            json={"key": "b2", "scope": "consumer", "target": "plain", "kind": "tokens", "limit": "9"},
        )
        assert made.status_code == 201
        assert made.json()["onRedisFailure"] is None
        changed = await api.patch("/api/v1/budgets/b2", headers=headers, json={"onRedisFailure": "open"})
        assert changed.json()["onRedisFailure"] == "open"
        assert (await api.get("/api/v1/budgets/b2", headers=headers)).json()["onRedisFailure"] == "open"
        back = await api.patch("/api/v1/budgets/b2", headers=headers, json={"onRedisFailure": None})
        assert back.json()["onRedisFailure"] is None
        rate = {"key": "r2", "scope": "model", "target": "*", "metric": "requests", "limit": "5"}
        made = await api.post("/api/v1/rate-limits", headers=headers, json={**rate, "onRedisFailure": "closed"})
        assert made.status_code == 201
        assert made.json()["onRedisFailure"] == "closed"
        assert (await api.get("/api/v1/rate-limits/r2", headers=headers)).json()["onRedisFailure"] == "closed"
        changed = await api.patch("/api/v1/rate-limits/r2", headers=headers, json={"onRedisFailure": "open"})
        assert changed.json()["onRedisFailure"] == "open"
        for path, key in (("budgets", "b2"), ("rate-limits", "r2")):
            bad = await api.patch(f"/api/v1/{path}/{key}", headers=headers, json={"onRedisFailure": "ajar"})
            assert bad.status_code == 400
            assert bad.headers["content-type"] == "application/problem+json"
            assert "onRedisFailure" in bad.text


def test_a_bad_value_in_the_config_file_names_the_field() -> None:
    for section in ("budgets", "rate_limits"):
        wrong = config()
        wrong[section][0]["on_redis_failure"] = "sometimes"
        with pytest.raises(ConfigError) as raised:
            parse_config(json.dumps(wrong), {}, source="t.yaml")
        assert "on_redis_failure" in str(raised.value)
