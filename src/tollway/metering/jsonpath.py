"""The small JSONPath subset meters use: `$.a.b`, `$['a b']`, `$.a[0]`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_STEP = re.compile(r"""\.([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\['([^']*)'\]|\["([^"]*)"\]""")
_MISSING = object()


def compile_path(path: str) -> tuple[str | int, ...]:
    """Parse a path into steps. Raises ValueError naming the problem."""
    if not path.startswith("$"):
        raise ValueError(f"JSONPath must start with '$': {path!r}")
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        match = _STEP.match(path, position)
        if match is None:
            raise ValueError(f"unsupported JSONPath {path!r} at position {position}")
        name, index, single, double = match.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(name if name is not None else (single if single is not None else double))
        position = match.end()
    if not steps:
        raise ValueError("JSONPath must name a property, e.g. $.tokens")
    return tuple(steps)


def extract(data: Any, steps: tuple[str | int, ...]) -> Any:
    """The value at `steps`, or None when any step is missing."""
    current = data
    for step in steps:
        if isinstance(step, int):
            if not isinstance(current, list) or step >= len(current):
                return None
            current = current[step]
        else:
            if not isinstance(current, Mapping):
                return None
            current = current.get(step, _MISSING)
            if current is _MISSING:
                return None
    return current
