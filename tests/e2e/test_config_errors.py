"""A newcomer's mistake in the config or the environment: one clear line naming where, exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_tollway
from tests.support.net import free_port

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"

VALID = """\
providers:
  - {name: local, type: simulator}
  - {name: openai, type: openai, api_key: "${OPENAI_API_KEY}"}
models:
  - {name: demo, targets: [{provider: local, model: demo}]}
consumers:
  - {username: acme-corp, keys: [acme-secret-key], models: [demo]}
"""
ENV = {"OPENAI_API_KEY": "sk-test"}


@pytest.mark.parametrize(
    ("mistake", "env", "line"),
    [
        (
            ("", ""),
            ENV,
            "tollway.yaml: ok (2 providers, 1 models, 1 consumers, 0 meters, 0 features, 0 plans, 0 customers)",
        ),
        (
            ("type: simulator}", "type: simulator, tokens_per_secnd: 5}"),
            ENV,
            "error: tollway.yaml: providers[0].tokens_per_secnd: unknown field 'tokens_per_secnd';"
            " did you mean 'tokens_per_second'?",
        ),
        (
            ("models:", "model:"),
            ENV,
            "error: tollway.yaml: model: unknown field 'model'; did you mean 'models'?\n"
            "error: tollway.yaml: consumers[0].models: unknown model 'demo'",
        ),
        (
            ("provider: local,", "provider: locl,"),
            ENV,
            "error: tollway.yaml: models[0].targets[0].provider: unknown provider 'locl' (defined: local, openai);"
            " did you mean 'local'?",
        ),
        (
            ("models: [demo]", "models: [dmo]"),
            ENV,
            "error: tollway.yaml: consumers[0].models: unknown model 'dmo'; did you mean 'demo'?",
        ),
        (
            ("type: openai", "type: opneai"),
            ENV,
            "error: tollway.yaml: providers[1].type: Input should be "
            "'openai', 'anthropic', 'gemini', 'azure_openai' or 'simulator', got 'opneai'; did you mean 'openai'?",
        ),
        (
            ("", ""),
            {},
            "error: tollway.yaml: providers[1].api_key: environment variable OPENAI_API_KEY is not set",
        ),
        (
            ("models:\n", "models:\n  - {name: demo\n"),
            ENV,
            "error: tollway.yaml: line 6, column 5: invalid YAML: expected ',' or '}', but got '{'",
        ),
    ],
    ids=[
        "valid",
        "unknown-field",
        "unknown-section",
        "unknown-provider",
        "unknown-model",
        "bad-provider-type",
        "missing-env-var",
        "invalid-yaml",
    ],
)
def test_check_prints_one_line_per_mistake(
    tmp_path: Path, mistake: tuple[str, str], env: dict[str, str], line: str
) -> None:
    before, after = mistake
    assert before in VALID
    (tmp_path / "tollway.yaml").write_text(VALID.replace(before, after, 1))
    result = run_tollway("check", "tollway.yaml", cwd=tmp_path, env=env)
    if line.startswith("error: "):
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr.splitlines() == line.splitlines()
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [line]


def test_serve_refuses_a_bad_config_with_the_same_line(tmp_path: Path) -> None:
    (tmp_path / "tollway.yaml").write_text(VALID.replace("provider: local,", "provider: locl,"))
    result = run_tollway("serve", "--config", "tollway.yaml", "--port", str(free_port()), cwd=tmp_path, env=ENV)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: tollway.yaml: models[0].targets[0].provider: unknown provider 'locl' (defined: local, openai);"
        " did you mean 'local'?"
    ]
    assert not (tmp_path / "tollway.db").exists(), "nothing is created for a config that is refused"


def test_missing_config_file_and_bad_setting(tmp_path: Path) -> None:
    result = run_tollway("check", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: nope.yaml: no such file"]
    (tmp_path / "tollway.yaml").write_text(VALID)
    result = run_tollway("check", "tollway.yaml", cwd=tmp_path, env={**ENV, "TOLLWAY_PORT": "80a"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: TOLLWAY_PORT: expected an integer, got '80a'"]


def test_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    (tmp_path / "tollway.yaml").write_text(VALID)
    closed = free_port()
    url = f"postgresql://tollway:hunter2@127.0.0.1:{closed}/tollway"
    result = run_tollway("serve", "--config", "tollway.yaml", cwd=tmp_path, env={**ENV, "TOLLWAY_DATABASE_URL": url})
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: database postgresql://tollway:***@127.0.0.1:{closed}/tollway: ")
    assert "Connection refused" in lines[0]
    assert "hunter2" not in result.stderr


def test_schema_and_reference_problems_come_in_one_round(tmp_path: Path) -> None:
    """A short key (a schema problem) no longer hides an unknown provider (a cross-reference problem)."""
    broken = VALID.replace("keys: [acme-secret-key]", "keys: [short]").replace("provider: local,", "provider: opnai,")
    (tmp_path / "tollway.yaml").write_text(broken)
    result = run_tollway("check", "tollway.yaml", cwd=tmp_path, env=ENV)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: tollway.yaml: consumers[0].keys: each key must be at least 8 characters",
        "error: tollway.yaml: models[0].targets[0].provider: unknown provider 'opnai' (defined: local, openai);"
        " did you mean 'openai'?",
    ]


def test_serve_with_a_catalog_on_a_missing_meter_exits_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    """The file is valid on its own; the reason shows when serve applies its catalog at start."""
    (tmp_path / "tollway.yaml").write_text(VALID + "features:\n  - {key: input-tokens, meter: no-such-meter}\n")
    env = {**ENV, "TOLLWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'tollway.db'}", "TOLLWAY_PORT": str(free_port())}
    result = run_tollway("serve", "--config", "tollway.yaml", cwd=tmp_path, env=env)
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    reasons = [line for line in result.stderr.splitlines() if "no-such-meter" in line]
    assert len(reasons) == 1, result.stderr
    assert reasons[0].endswith(
        "ERROR tollway: startup failed: catalog: features[0].meter: unknown meter 'no-such-meter' "
        "(defined: llm_cost, llm_requests, llm_tokens)"
    )


@pytest.mark.parametrize(
    ("before", "after", "line"),
    [
        (
            "filters: {type: input}",
            "filters: {kind: input}",
            "quickstart.yaml: features[0].filters.kind: 'kind' is not a group-by dimension of meter 'llm_tokens'"
            " (dimensions: model, provider, status_code, type)",
        ),
        (
            "filters: {type: output}",
            "filters: {type: request}",
            "quickstart.yaml: features[1].filters.type: type 'request' is never recorded by meter 'llm_tokens'"
            " (its type values: cache_read, cache_write, input, output)",
        ),
    ],
    ids=["unknown-dimension", "unknown-built-in-value"],
)
def test_check_refuses_what_apply_refuses(tmp_path: Path, before: str, after: str, line: str) -> None:
    """`check` needs no database, yet refuses a feature filter that `apply --dry-run` refuses, with the same line."""
    text = QUICKSTART.read_text()
    assert before in text
    (tmp_path / "quickstart.yaml").write_text(text.replace(before, after, 1))
    checked = run_tollway("check", "quickstart.yaml", cwd=tmp_path)
    assert checked.returncode == 2, checked.stdout
    assert checked.stderr.splitlines() == [f"error: {line}"]
    planned = run_tollway("apply", "--dry-run", "quickstart.yaml", cwd=tmp_path)
    assert planned.returncode == 2, planned.stdout
    assert f"error: {line}" in planned.stderr.splitlines()
