"""The catalog from the command line (`tollway meters|features|plans|customers|subscriptions ...`, `usage
--customer --json|--csv`), run in-process over a SQLite file: the API's checks and JSON, whole ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from tollway.cli.main import app

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"


class Cli:
    def __init__(self, db: Path) -> None:
        self.env = {"TOLLWAY_DATABASE_URL": f"sqlite:///{db}", "COLUMNS": "80"}

    def __call__(self, *args: str, code: int = 0) -> str:
        result = CliRunner().invoke(app, list(args), env=self.env, terminal_width=80)
        assert result.exit_code == code, result.output
        return result.output

    def json(self, *args: str) -> Any:
        return orjson.loads(self(*args, "--json"))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "tollway.db")
    cli("apply", str(QUICKSTART))
    return cli


def test_features_customers_and_subscriptions_round_trip(cli: Cli, tmp_path: Path) -> None:
    assert [f["key"] for f in cli.json("features", "list")] == ["input-tokens", "output-tokens"]
    refused = cli(
        "features", "create", "--key", "requests", "--meter", "llm_tokens", "--filter", "type=request", code=2
    )
    assert "type 'request' is never recorded by meter 'llm_tokens'" in refused
    created = cli.json("features", "create", "--key", "cached", "--meter", "llm_tokens", "--filter", "type=cache_read")
    assert (created["key"], created["meterGroupByFilters"]) == ("cached", {"type": "cache_read"})
    assert cli.json("features", "show", "cached")["id"] == created["id"]

    customer = cli.json("customers", "create", "--key", "globex", "--name", "Globex", "--subject", "globex")
    assert customer["usageAttribution"] == {"subjectKeys": ["globex"]}
    assert cli("customers", "create", "--key", "globex", "--name", "Again", code=2).startswith("error: ")

    subscription = cli.json("subscriptions", "create", "--customer", "globex", "--plan", "pro")
    assert (subscription["plan"]["key"], subscription["status"]) == ("pro", "active")
    listed = cli("subscriptions", "list", "--customer", "globex")
    assert subscription["id"] in listed  # whole, on one line, at 80 columns
    assert cli.json("customers", "show", "globex")["currentSubscriptionId"] == subscription["id"]
    ended = cli("subscriptions", "cancel", subscription["id"])
    assert ended.startswith(f"subscription {subscription['id']} ends 20")

    listing = cli.json("plans", "list")
    plans = listing["items"] if isinstance(listing, dict) else listing
    assert sorted((p["key"], p["version"]) for p in plans) == [("pro", 1), ("starter", 1)]
    assert all(p["id"] in cli("plans", "list") for p in plans)


def test_meters_from_flags_and_from_a_file(cli: Cli, tmp_path: Path) -> None:
    made = cli.json(
        "meters", "create", "--slug", "api_calls", "--event-type", "api.call", "--aggregation", "COUNT",
        "--group-by", "route=$.route",
    )  # fmt: skip
    assert (made["slug"], made["groupBy"]) == ("api_calls", {"route": "$.route"})
    body = tmp_path / "meter.yaml"
    body.write_text("slug: bytes\neventType: api.call\naggregation: SUM\nvalueProperty: $.bytes\n")
    assert cli.json("meters", "create", "--file", str(body))["valueProperty"] == "$.bytes"
    assert {"api_calls", "bytes", "llm_tokens"} <= {m["slug"] for m in cli.json("meters", "list")}
    cli("meters", "delete", "bytes")
    assert "bytes" not in {m["slug"] for m in cli.json("meters", "list")}
    assert cli("meters", "show", "nope", code=2).startswith("error: ")


def test_usage_of_a_customer_as_json_and_csv(cli: Cli) -> None:
    assert cli.json("usage", "llm_tokens", "--customer", "acme") == {
        "from": None,
        "to": None,
        "windowSize": None,
        "data": [],
    }
    assert (
        cli("usage", "llm_tokens", "--customer", "acme", "--group-by", "type", "--csv")
        .splitlines()[0]
        .startswith("window_start,window_end")
    )
    assert cli("usage", "--customer", "nobody", code=2) == "error: unknown customer 'nobody'\n"
