"""`tollway --help` shows every word of the help texts: no text eaten as markup, usual usage lines."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import run_tollway


def test_serve_help_keeps_the_environment_hints(tmp_path: Path) -> None:
    result = run_tollway("serve", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Bind address [env TOLLWAY_HOST, default 127.0.0.1]." in result.stdout
    assert "Port [env TOLLWAY_PORT, default 8080]." in result.stdout
    assert "<bool>" not in result.stdout


def test_check_usage_line_names_the_argument_plainly(tmp_path: Path) -> None:
    result = run_tollway("check", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage: tollway check [OPTIONS] CONFIG" in result.stdout
    assert "{" not in result.stdout
