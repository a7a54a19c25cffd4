"""Cross references between config sections (providers <- models <- consumers), checked on plain data.

The same check runs on a validated config and, when the schema itself has problems, on the raw file,
so a newcomer sees every problem of the file at once instead of one round per fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """'; did you mean 'openai'?' when a known name is close to `name`, else ''."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def reference_problems(data: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    providers = _entries(data, "providers")
    models = _entries(data, "models")
    consumers = _entries(data, "consumers")
    provider_names = _unique([p.get("name") for p in providers], "providers", "name", problems)
    model_names = _unique([m.get("name") for m in models], "models", "name", problems)
    _unique([c.get("username") for c in consumers], "consumers", "username", problems)
    _unique([m.get("slug") for m in _entries(data, "meters")], "meters", "slug", problems)
    alias_names = _alias_problems(models, model_names, problems)
    for i, model in enumerate(models):
        targets = model.get("targets")
        for j, target in enumerate(targets if isinstance(targets, list) else []):
            name = target.get("provider") if isinstance(target, dict) else None
            if isinstance(name, str) and name not in provider_names:
                problems.append(
                    f"models[{i}].targets[{j}].provider: unknown provider {name!r}"
                    f" (defined: {', '.join(sorted(provider_names)) or 'none'}){did_you_mean(name, provider_names)}"
                )
    _unique([r.get("path") for r in _entries(data, "routes")], "routes", "path", problems)
    for i, route in enumerate(_entries(data, "routes")):
        name = route.get("model")
        if isinstance(name, str) and name not in model_names and name not in alias_names:
            problems.append(f"routes[{i}].model: unknown model {name!r}{did_you_mean(name, model_names)}")
    seen_keys: set[str] = set()
    for i, consumer in enumerate(consumers):
        allowed = consumer.get("models")
        for name in allowed if isinstance(allowed, list) else []:
            if isinstance(name, str) and name not in model_names and name not in alias_names:
                problems.append(f"consumers[{i}].models: unknown model {name!r}{did_you_mean(name, model_names)}")
        keys = consumer.get("keys")
        for key in keys if isinstance(keys, list) else []:
            if key in seen_keys:
                problems.append(f"consumers[{i}].keys: key is already used by another consumer")
            if isinstance(key, str):
                seen_keys.add(key)
    return problems


def _alias_problems(models: list[dict[str, Any]], model_names: set[str], problems: list[str]) -> set[str]:
    """Each alias names one model and is no model's name; no two models share a pattern. A pattern that
    also matches exact names or aliases is fine (exact names win, then aliases, then patterns)."""
    owner: dict[str, str] = {}
    patterns: dict[str, str] = {}
    for i, model in enumerate(models):
        name = model.get("name")
        aliases = model.get("aliases")
        for alias in aliases if isinstance(aliases, list) else []:
            if not isinstance(alias, str):
                continue
            if alias in model_names:
                problems.append(f"models[{i}].aliases: {alias!r} is already a model's name")
            elif alias in owner and owner[alias] != name:
                problems.append(f"models[{i}].aliases: {alias!r} is already an alias of model {owner[alias]!r}")
            owner.setdefault(alias, str(name))
        pattern = model.get("pattern")
        if isinstance(pattern, str):
            if pattern in patterns:
                problems.append(f"models[{i}].pattern: {pattern!r} is already model {patterns[pattern]!r}'s pattern")
            patterns.setdefault(pattern, str(name))
    return set(owner)


def _entries(data: Mapping[str, Any], section: str) -> list[dict[str, Any]]:
    value = data.get(section)
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _unique(names: list[Any], section: str, field: str, problems: list[str]) -> set[str]:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.append(f"{section}[{i}].{field}: duplicate {name!r}")
        seen.add(name)
    return seen
