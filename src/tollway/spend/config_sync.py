"""The config file's spend rules made what it says: one reconciliation for budgets and rate limits alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from tollway.errors import ConflictError


class ManagedRule(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def managed_by(self) -> str: ...


Rule = TypeVar("Rule", bound=ManagedRule)


async def sync_config_rules(
    noun: str,
    desired: Sequence[Rule],
    stored: Sequence[Rule],
    *,
    fields: Callable[[Rule], Mapping[str, Any]],
    create: Callable[[Rule], Awaitable[object]],
    update: Callable[[Rule, Rule], Awaitable[object]],
    delete: Callable[[Rule], Awaitable[object]],
) -> list[str]:
    """Make the config file's rules (managed_by config) what `desired` says; those made through the API are left
    alone (a key the API already uses is a conflict). `update(found, wanted)`; one line per change."""
    by_key = {rule.key: rule for rule in stored}
    lines: list[str] = []
    wanted = {rule.key for rule in desired}
    for rule in desired:
        found = by_key.get(rule.key)
        if found is None:
            await create(rule)
            lines.append(f"+ {noun} {rule.key}")
        elif found.managed_by != "config":
            raise ConflictError(f"{noun} {rule.key!r} exists and was made through the API", field="key")
        elif fields(found) != fields(rule):
            await update(found, rule)
            lines.append(f"~ {noun} {rule.key}")
    for rule in by_key.values():
        if rule.managed_by == "config" and rule.key not in wanted:
            await delete(rule)
            lines.append(f"- {noun} {rule.key}")
    return lines
