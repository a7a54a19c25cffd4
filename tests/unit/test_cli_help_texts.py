"""Every `tollway` command's help: complete in the group listings, a plain usage line, one example."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from tollway.cli.main import app

ROOT = typer.main.get_command(app)


def _walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if hasattr(command, "list_commands"):
        yield path, command
        for name in command.list_commands(None):
            yield from _walk(command.get_command(None, name), (*path, name))
    else:
        yield path, command


COMMANDS = list(_walk(ROOT, ()))
LEAVES = [(path, command) for path, command in COMMANDS if not hasattr(command, "list_commands")]
GROUPS = [path for path, command in COMMANDS if hasattr(command, "list_commands")]


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_catalog_commands_are_all_there() -> None:
    names = {" ".join(path) for path, _ in LEAVES}
    for group, verbs in {
        "meters": ("list", "show", "create", "delete"),
        "features": ("list", "show", "create", "archive"),
        "plans": ("list", "show", "create", "publish", "archive"),
        "customers": ("list", "show", "create", "delete"),
        "subscriptions": ("list", "show", "create", "cancel", "change"),
    }.items():
        assert {f"{group} {verb}" for verb in verbs} <= names


@pytest.mark.parametrize("path", [path for path, _ in LEAVES], ids=lambda p: " ".join(p))
def test_each_command_has_an_example_and_a_plain_usage_line(path: tuple[str, ...]) -> None:
    text = _help(path)
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: tollway {' '.join(path)}"), usage
    assert "{" not in usage
    assert not any(piece.islower() for piece in usage.split()[2 + len(path) :]), usage
    examples = [line for line in text.splitlines() if line.strip().startswith("Example: ")]
    assert len(examples) == 1, text
    assert f"tollway {path[0]}" in examples[0], text


@pytest.mark.parametrize("path", GROUPS, ids=lambda p: " ".join(p) or "tollway")
def test_group_listings_show_every_word_of_each_description(path: tuple[str, ...]) -> None:
    text = _help(path)
    assert "…" not in text
    assert "..." not in text.split("Commands:", 1)[1], text
