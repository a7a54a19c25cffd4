"""Load the YAML configuration: `${VAR}` substitution, then validation with one line per problem."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

import pydantic
import yaml
from pydantic import BaseModel

from tollway.bounded_json import nul_path
from tollway.config.references import did_you_mean, reference_problems
from tollway.config.schema import TollwayConfig
from tollway.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(path: str | Path, env: Mapping[str, str]) -> TollwayConfig:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{file}: cannot read: {exc}"]) from None
    return parse_config(text, env, source=str(file))


def parse_config(text: str, env: Mapping[str, str], source: str = "<config>") -> TollwayConfig:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{source}: {where}invalid YAML: {problem}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: the top level must be a mapping (providers:, models:, consumers:)"])
    problems: list[str] = []
    expanded = _expand(raw, env, "", problems)
    nul_at = nul_path(expanded)  # YAML's "\0": no store can keep it (PostgreSQL text refuses NUL)
    if nul_at is not None:
        problems.append(f"{nul_at or '<root>'}: must not contain the NUL character (U+0000)")
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    try:
        return TollwayConfig.model_validate(expanded)
    except pydantic.ValidationError as exc:
        lines = _describe(exc)
        # The schema stopped before the cross-reference checks: run them on the raw file too, so every
        # problem is reported in one round.
        lines.extend(line for line in reference_problems(expanded) if line not in lines)
        raise ConfigError([f"{source}: {line}" for line in lines]) from None


def _expand(value: Any, env: Mapping[str, str], path: str, problems: list[str]) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = env.get(name)
            if found is None or found == "":
                if default is not None:
                    return default
                problems.append(f"{path or '<root>'}: environment variable {name} is not set")
                return ""
            return found

        return _VAR.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _expand(v, env, f"{path}.{k}" if path else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the config model found at `loc` (for spelling suggestions)."""
    model: type[BaseModel] = TollwayConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        found = _model_in(field.annotation)
        if found is None:
            return []
        model = found
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _describe(exc: pydantic.ValidationError) -> list[str]:
    lines: list[str] = []
    for error in exc.errors():
        path = ""
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            name = str(error["loc"][-1])
            message = f"unknown field {name!r}{did_you_mean(name, _fields_at(error['loc'][:-1]))}"
        elif error["type"] == "literal_error" and isinstance(error.get("input"), str):
            options = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
            message = f"{message}, got {error['input']!r}{did_you_mean(error['input'], options)}"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if not path:
            lines.extend(message.splitlines())  # whole-file checks name their own paths
        else:
            lines.append(f"{path}: {message}")
    return lines
