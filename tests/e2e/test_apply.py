"""`tollway apply FILE` as a user runs it (a subprocess on a SQLite file), and `serve --config` applying its catalog."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cli import run_tollway
from tests.support.tollway_process import TollwayProcess
from tollway.settings import Settings
from tollway.wiring.services import build_services

QUICKSTART = (Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml").read_text()


def env_for(db: Path) -> dict[str, str]:
    return {"TOLLWAY_DATABASE_URL": f"sqlite:///{db}"}


def stored(db: Path) -> dict[str, Any]:
    """The catalog in the database, read in-process (not through the command under test)."""

    async def read() -> dict[str, Any]:
        services = build_services(Settings(database_url=f"sqlite:///{db}"))
        try:
            return {
                "features": sorted((f.key, f.managed_by) for f in await services.catalog.features.features()),
                "plans": sorted((p.key, p.version, p.status) for p in await services.catalog.plans.plans()),
                "customers": sorted((c.key, c.subjects) for c in await services.catalog.customers.customers()),
                "subscriptions": sorted(
                    (s.plan_key, s.plan_version) for s in await services.catalog.subscriptions.subscriptions()
                ),
            }
        finally:
            await services.close()

    return asyncio.run(read())


APPLIED = {
    "features": [("input-tokens", "config"), ("output-tokens", "config")],
    "plans": [("pro", 1, "published"), ("starter", 1, "published")],
    "customers": [("acme", ("acme-corp",))],
    "subscriptions": [("starter", 1)],
}


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the quickstart applied once."""
    folder = tmp_path_factory.mktemp("applied")
    (folder / "quickstart.yaml").write_text(QUICKSTART)
    result = run_tollway("apply", "quickstart.yaml", cwd=folder, env=env_for(folder / "tollway.db"))
    assert result.returncode == 0, result.stderr
    return folder / "tollway.db"


def test_apply_creates_then_no_changes_then_a_dry_run_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "tollway.db"
    (tmp_path / "quickstart.yaml").write_text(QUICKSTART)
    first = run_tollway("apply", "quickstart.yaml", cwd=tmp_path, env=env_for(db))
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[-7:-1] == [
        "+ feature input-tokens",
        "+ feature output-tokens",
        "+ plan starter v1 (published)",
        "+ plan pro v1 (published)",
        "+ customer acme",
        lines[-2],
    ]
    assert lines[-2].startswith("+ subscription acme -> starter v1 from 20")
    meters = [line for line in lines if line.startswith("+ meter ")]
    assert {"+ meter llm_tokens", "+ meter llm_requests"} <= set(meters)
    assert lines[-1] == f"Apply: {6 + len(meters)} to create, 0 to update, 0 to archive."
    assert stored(db) == APPLIED

    again = run_tollway("apply", "quickstart.yaml", cwd=tmp_path, env=env_for(db))
    assert (again.returncode, again.stdout) == (0, f"database: sqlite:///{db}\nNo changes.\n")

    edited = QUICKSTART.replace('amount: "0.000003"', 'amount: "0.000002"')
    assert edited != QUICKSTART
    (tmp_path / "edited.yaml").write_text(edited)
    dry = run_tollway("apply", "edited.yaml", "--dry-run", cwd=tmp_path, env=env_for(db))
    assert dry.returncode == 0, dry.stderr
    note = "note: subscription acme stays on starter v1 (v2 is published; migrating a subscription is explicit)\n"
    assert dry.stdout == (
        f"database: sqlite:///{db}\n" + note + "+ plan starter v2 (published; v1 archived)\n"
        "Apply: 1 to create, 0 to update, 0 to archive.\n"
        "(dry run: nothing changed)\n"
    )
    assert stored(db) == APPLIED

    real = run_tollway("apply", "edited.yaml", cwd=tmp_path, env=env_for(db))
    assert real.returncode == 0, real.stderr
    assert real.stdout == f"database: sqlite:///{db}\n" + note + (
        "+ plan starter v2 (published; v1 archived)\nApply: 1 to create, 0 to update, 0 to archive.\n"
    )
    assert stored(db)["plans"] == [("pro", 1, "published"), ("starter", 1, "archived"), ("starter", 2, "published")]
    migrated = run_tollway("apply", "edited.yaml", cwd=tmp_path, env=env_for(db))
    assert migrated.stdout == f"database: sqlite:///{db}\n" + note + "No changes.\n"


def test_dry_run_on_a_missing_sqlite_file_plans_creates_and_makes_no_file(tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "tollway.db"
    (tmp_path / "quickstart.yaml").write_text(QUICKSTART)
    dry = run_tollway("apply", "quickstart.yaml", "--dry-run", cwd=tmp_path, env=env_for(db))
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[:2] == [f"database: sqlite:///{db}", f"note: no database at {db} yet: planned against an empty one"]
    assert lines[-1] == "(dry run: nothing changed)"
    assert [line for line in lines if not line.startswith("+ meter ")][2:-2] == [
        "+ feature input-tokens",
        "+ feature output-tokens",
        "+ plan starter v1 (published)",
        "+ plan pro v1 (published)",
        "+ customer acme",
        lines[-3],
    ]
    assert lines[-3].startswith("+ subscription acme -> starter v1 from 20")
    meters = [line for line in lines if line.startswith("+ meter ")]
    assert {"+ meter llm_tokens", "+ meter llm_requests"} <= set(meters)
    assert lines[-2] == f"Apply: {6 + len(meters)} to create, 0 to update, 0 to archive."
    assert not db.exists()
    assert not db.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quickstart.yaml"]


ACME = "  - {key: acme, name: Acme Corp, usage_from: [acme-corp], subscription: {plan: starter}}\n"
BAD_INPUTS: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    # problems of the file itself: every one reported in one round
    "schema": (
        [
            ('amount: "0.00001"', 'amount: "-0.00001"'),
            (
                '- {unit_price: "0.000008"}',
                '- {up_to: "500", unit_price: "0.000009"}\n            - {unit_price: "0.000008"}',
            ),
            ("currency: USD", "currency: USX"),
            ("billing_cadence: P1M", "billing_cadence: P1X"),
            ('amount: "0.000003"', "amount: 0.000003"),
        ],
        [
            "plans[0].currency: unknown currency 'USX' (ISO 4217)",
            "plans[0].billing_cadence: must be an ISO-8601 duration",
            'plans[0].rate_cards[0].price.amount: write it in quotes, e.g. "0.000003"',
            "plans[0].rate_cards[1].price.amount: must be at least 0",
            "plans[1].rate_cards[2].price.tiers[1].up_to: must be greater than the previous tier's upTo (1000000)",
        ],
    ),
    "unknown-feature": (
        [("{feature: output-tokens, price: {type: unit", "{feature: outptu-tokens, price: {type: unit")],
        ["plans[0].rate_cards[1].feature: unknown feature 'outptu-tokens'"],
    ),
    "subject-twice-in-file": (
        [(ACME, ACME + "  - {key: globex, name: Globex, usage_from: [acme-corp]}\n")],
        ["customers[1].usage_from: subject 'acme-corp' is already paid for by customer 'acme'"],
    ),
    # the stored acme pays for acme-corp; a file without acme gives the subject to another customer
    "subject-claimed-in-store": (
        [(ACME, "  - {key: initech, name: Initech, usage_from: [acme-corp]}\n")],
        ["customers[0].usage_from: subject 'acme-corp' already belongs to customer 'acme'"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_names_the_field_and_changes_nothing(applied: Path, tmp_path: Path, case: str) -> None:
    edits, expected = BAD_INPUTS[case]
    text = QUICKSTART
    for before, after in edits:
        assert before in text
        text = text.replace(before, after, 1)
    (tmp_path / "bad.yaml").write_text(text)
    result = run_tollway("apply", "bad.yaml", cwd=tmp_path, env=env_for(applied))
    assert result.returncode == 2, (result.stdout, result.stderr)
    errors = result.stderr.splitlines()
    assert len(errors) == len(expected), result.stderr
    for line, wanted in zip(errors, expected, strict=True):
        assert line.startswith(f"error: bad.yaml: {wanted}"), result.stderr
    assert result.stdout in ("", f"database: sqlite:///{applied}\n")  # a file problem comes before the database
    assert stored(applied) == APPLIED


def test_serve_applies_the_catalog_at_start(tmp_path: Path) -> None:
    gateway = TollwayProcess(tmp_path, yaml.safe_load(QUICKSTART)).start()
    try:
        with gateway.admin() as admin:
            features = admin.get("/api/v1/features").json()
            plans = admin.get("/api/v1/plans").json()
            customers = admin.get("/api/v1/customers").json()
    finally:
        assert gateway.stop() == 0

    def items(body: Any) -> list[dict[str, Any]]:
        return body["items"] if isinstance(body, dict) else body  # type: ignore[no-any-return]

    assert sorted(f["key"] for f in items(features)) == ["input-tokens", "output-tokens"]
    assert sorted((p["key"], p["version"]) for p in items(plans)) == [("pro", 1), ("starter", 1)]
    assert [c["key"] for c in items(customers)] == ["acme"]
    assert "catalog: + plan starter v1 (published)" in gateway.log()


def test_apply_without_a_database_url_creates_no_file_unless_asked(tmp_path: Path) -> None:
    """Without TOLLWAY_DATABASE_URL, `apply` would fill ./tollway.db while the server reads another database:
    it refuses and names the file; --create makes it, and the first line says where it applied."""
    (tmp_path / "quickstart.yaml").write_text(QUICKSTART)
    refused = run_tollway("apply", "quickstart.yaml", cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout
    missing = tmp_path / "tollway.db"
    assert refused.stderr.startswith(f"error: no database at {missing}: TOLLWAY_DATABASE_URL is not set")
    assert not (tmp_path / "tollway.db").exists()
    created = run_tollway("apply", "quickstart.yaml", "--create", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert created.stdout.splitlines()[0] == "database: sqlite:///./tollway.db"
    assert stored(tmp_path / "tollway.db") == APPLIED
