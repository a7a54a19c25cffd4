"""The notifications domain package imports no adapter, API, CLI, composition root or gateway module (the API's
shapes and the HTTP sender come in through ports)."""

from __future__ import annotations

import ast
from pathlib import Path

import tollway.notifications

FORBIDDEN = (
    "tollway.adapters",
    "tollway.api",
    "tollway.cli",
    "tollway.bootstrap",
    "tollway.wiring",
    "tollway.runtime",
    "tollway.gateway",
    "tollway.asgi",
)


def test_notifications_import_no_outer_layer() -> None:
    package = Path(tollway.notifications.__file__).parent
    offenders: list[str] = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(FORBIDDEN)]
    assert offenders == []
    assert len(list(package.glob("*.py"))) > 10  # the package was found and read
