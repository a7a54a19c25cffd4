"""`tollway budgets ...` and `tollway check` on budgets, run as a user would."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import run_tollway


def test_budgets_from_the_command_line(tmp_path: Path) -> None:
    env = {"TOLLWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'tollway.db'}"}
    created = run_tollway(
        "budgets", "create", "--key", "bot-daily", "--consumer", "bot", "--kind", "tokens", "--limit", "5000",
        "--window", "day", "--json", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    shown = json.loads(created.stdout)
    assert {
        k: shown[k] for k in ("key", "scope", "target", "kind", "limit", "window", "hard", "used", "remaining")
    } == {
        "key": "bot-daily",
        "scope": "consumer",
        "target": "bot",
        "kind": "tokens",
        "limit": "5000",
        "window": "day",
        "hard": True,
        "used": "0",
        "remaining": "5000",
    }
    updated = run_tollway(
        "budgets", "update", "bot-daily", "--limit", "7000", "--soft", "--json", cwd=tmp_path, env=env
    )
    assert updated.returncode == 0, updated.stderr
    assert (json.loads(updated.stdout)["limit"], json.loads(updated.stdout)["hard"]) == ("7000", False)
    assert (
        run_tollway("budgets", "delete", "bot-daily", cwd=tmp_path, env=env).stdout.strip()
        == "budget bot-daily deleted"
    )


def test_check_refuses_a_budget_that_names_no_target(tmp_path: Path) -> None:
    config = tmp_path / "tollway.yaml"
    config.write_text(
        json.dumps(
            {
                "budgets": [
                    {"key": "b", "kind": "money", "limit": "5"},
                    {"key": "c", "consumer": "x", "kind": "tokens", "limit": "1.5"},
                ]
            }
        )
    )
    checked = run_tollway("check", str(config), cwd=tmp_path)
    assert checked.returncode != 0
    assert "budgets[0]" in checked.stderr
    assert "exactly one of customer" in checked.stderr
    assert "budgets[1]" in checked.stderr
    assert "whole number of tokens" in checked.stderr


def test_rate_limits_from_the_command_line(tmp_path: Path) -> None:
    env = {"TOLLWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'tollway.db'}"}
    created = run_tollway(
        "rate-limits", "create", "--key", "each-rpm", "--consumer", "*", "--metric", "requests", "--limit", "60",
        "--json", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    shown = json.loads(created.stdout)
    assert {k: shown[k] for k in ("key", "scope", "target", "metric", "limit", "window")} == {
        "key": "each-rpm",
        "scope": "consumer",
        "target": "*",
        "metric": "requests",
        "limit": "60",
        "window": "minute",
    }
    updated = run_tollway("rate-limits", "update", "each-rpm", "--limit", "120", "--json", cwd=tmp_path, env=env)
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["limit"] == "120"
    listed = run_tollway("rate-limits", "list", "--json", cwd=tmp_path, env=env)
    assert [r["key"] for r in json.loads(listed.stdout)] == ["each-rpm"]
    assert (
        run_tollway("rate-limits", "delete", "each-rpm", cwd=tmp_path, env=env).stdout.strip()
        == "rate limit each-rpm deleted"
    )


def test_check_refuses_a_rate_limit_without_a_window(tmp_path: Path) -> None:
    config = tmp_path / "tollway.yaml"
    config.write_text(json.dumps({"rate_limits": [{"key": "r", "consumer": "x", "metric": "tokens", "limit": "100"}]}))
    checked = run_tollway("check", str(config), cwd=tmp_path)
    assert checked.returncode != 0
    assert "rate_limits[0]" in checked.stderr
    assert "window must be one of minute, hour, day" in checked.stderr
