"""Issue 19, findings 1 and 5 for the config file: a file that empties itself (a truncating write) is refused by
`tollway check`, at start and on reload; a reload never revokes an API-issued key and logs what it removes
before it does; a duration past what a date holds is refused cleanly by `tollway check` and by a reload."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.composed import ADMIN_TOKEN, CONSUMER_KEY
from tests.support.in_process import in_process
from tollway.bootstrap import build_runtime
from tollway.config.loader import load_config
from tollway.errors import ConfigError
from tollway.settings import Settings

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
GLOBEX = {"username": "globex", "keys": ["globex-secret-key"]}
CONFIG: dict[str, Any] = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [{"username": "acme-corp", "keys": [CONSUMER_KEY]}, GLOBEX],
}
HUGE_CADENCE = {
    "features": [{"key": "tokens", "meter": "llm_tokens"}],
    "plans": [
        {
            "key": "p",
            "name": "P",
            "currency": "USD",
            "billing_cadence": "P999999999999D",
            "rate_cards": [{"feature": "tokens", "price": {"type": "unit", "amount": "1"}}],
        }
    ],
}


async def status(http: httpx.AsyncClient, key: str) -> int:
    response = await http.post(
        "/v1/chat/completions",
        json={"model": "demo", "messages": [{"role": "user", "content": "Hi"}]},
        headers={"authorization": f"Bearer {key}"},
    )
    return response.status_code


def write(path: Path, config: dict[str, Any] | str) -> None:
    path.write_text(config if isinstance(config, str) else json.dumps(config))


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_truncated_file_is_refused_on_reload_and_no_reload_revokes_a_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest, database: str
) -> None:
    caplog.set_level(logging.WARNING)
    path = tmp_path / "tollway.yaml"
    write(path, CONFIG)
    settings: dict[str, Any] = {"admin_token": ADMIN_TOKEN}
    if database == "postgres":
        settings["database_url"] = request.getfixturevalue("postgres_url")
    async with in_process(tmp_path, path, **settings) as app, app.http() as http:
        created = await http.post("/api/v1/consumers/acme-corp/keys", json={"name": "api"}, headers=ADMIN)
        assert created.status_code == 201, created.text
        api_key = created.json()["key"]
        await app.runtime.keys.refresh()
        assert (await status(http, CONSUMER_KEY), await status(http, api_key)) == (200, 200)

        for truncated, why in (
            ("", "defines nothing"),
            ("\n# only a comment\n", "defines nothing"),
            ({**CONFIG, "consumers": []}, "remove every one of the running consumers"),
            ({"providers": CONFIG["providers"]}, "remove every one of the running models and consumers"),
        ):
            write(path, truncated)
            caplog.clear()
            assert not await app.runtime.reload()
            assert why in caplog.text
            assert "config reload refused" in caplog.text
            await app.runtime.keys.refresh()
            assert (await status(http, CONSUMER_KEY), await status(http, api_key)) == (200, 200), truncated

        # acme-corp removed on purpose: logged before it happens; its API key is kept (unusable meanwhile).
        write(path, {**CONFIG, "consumers": [GLOBEX]})
        caplog.clear()
        assert await app.runtime.reload()
        messages = [r.getMessage() for r in caplog.records]
        announced = next(i for i, m in enumerate(messages) if m.startswith("config reload removes consumers acme-corp"))
        synced = next(i for i, m in enumerate(messages) if m.startswith("config consumers synced"))
        assert announced < synced, messages
        await app.runtime.keys.refresh()
        assert (await status(http, CONSUMER_KEY), await status(http, api_key)) == (401, 401)

        # The file restored: the API key works again, never revoked.
        write(path, CONFIG)
        assert await app.runtime.reload()
        await app.runtime.keys.refresh()
        assert (await status(http, CONSUMER_KEY), await status(http, api_key)) == (200, 200)
        keys = (await http.get("/api/v1/consumers/acme-corp/keys", headers=ADMIN)).json()
        assert [(k["name"], k["revokedAt"]) for k in keys if k["managedBy"] == "api"] == [("api", None)]


async def test_an_empty_file_is_allowed_when_asked_and_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "tollway.yaml"
    write(path, CONFIG)
    async with in_process(tmp_path, path, admin_token=ADMIN_TOKEN, allow_empty_config=True) as app:
        write(path, "")
        assert await app.runtime.reload(), "TOLLWAY_ALLOW_EMPTY_CONFIG=true lets an empty file through"
        assert app.runtime.config.consumers == []

    settings = Settings(config=str(path), database_url=f"sqlite:///{tmp_path / 'start.db'}")
    runtime = build_runtime(settings, load_config(path, {}))
    with pytest.raises(ConfigError, match="defines nothing"):
        await runtime.start()
    await runtime.store.close()


async def test_a_reload_with_a_duration_past_any_date_is_refused_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tollway.yaml"
    write(path, CONFIG)
    async with in_process(tmp_path, path) as app:
        write(path, {**CONFIG, **HUGE_CADENCE})
        assert not await app.runtime.reload()
        running = set(app.runtime._background)  # the runtime's own long-lived tasks (workers) never finish
        app.runtime._reload_soon()  # the SIGHUP path: a task whose failure is logged, never left unretrieved
        for task in set(app.runtime._background) - running:
            await asyncio.wait_for(task, 30)
    assert "plans[0].billing_cadence: is too long (at most 1000 years)" in caplog.text
    assert not [r for r in caplog.records if r.exc_info], "no traceback"


def test_check_refuses_an_empty_file_and_a_huge_duration_in_one_line_each(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tollway.cli.main import app

    empty, huge = tmp_path / "empty.yaml", tmp_path / "huge.yaml"
    write(empty, "")
    write(huge, {**CONFIG, **HUGE_CADENCE})
    runner = CliRunner(env={"COLUMNS": "400"})
    refused = runner.invoke(app, ["check", str(empty)])
    assert refused.exit_code == 2
    assert f"{empty}: the file defines nothing" in refused.stderr
    assert "TOLLWAY_ALLOW_EMPTY_CONFIG=true" in refused.stderr
    assert refused.stdout == ""
    allowed = runner.invoke(app, ["check", "--allow-empty", str(empty)])
    assert allowed.exit_code == 0, allowed.output
    too_long = runner.invoke(app, ["check", str(huge)])
    assert too_long.exit_code == 2
    assert too_long.exception is None or isinstance(too_long.exception, SystemExit)
    assert too_long.stderr.strip().splitlines() == [
        f"error: {huge}: plans[0].billing_cadence: is too long (at most 1000 years), got 'P999999999999D'"
    ]
