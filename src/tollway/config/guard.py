"""Guards against a config file that empties itself: a file truncated by a shell redirect or a non-atomic write
reads as valid YAML with nothing (or half of what it had) in it, and applying it would take every model and
consumer away at once.

- `empty_problems`: a file that defines nothing at all (no providers, models, consumers, meters, features, plans,
  customers, budgets or notification channels and rules) is refused by `tollway check`, at start and on reload;
- `shrink_problems`: a reload that would remove every provider, every model or every consumer the running
  config has, or shrink providers, models and consumers all at once, is refused;
- `removals`: what a reload removes, logged before it happens.

Each is let through when explicitly allowed: TOLLWAY_ALLOW_EMPTY_CONFIG=true (`tollway check --allow-empty`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tollway.config.schema import TollwayConfig

ALLOW_HINT = "set TOLLWAY_ALLOW_EMPTY_CONFIG=true if that is what you want"


def is_empty(config: TollwayConfig) -> bool:
    return not any(
        (
            config.providers,
            config.models,
            config.consumers,
            config.meters,
            config.features,
            config.plans,
            config.customers,
            config.budgets,
            config.rate_limits,
            config.notifications is not None and (config.notifications.channels or config.notifications.rules),
        )
    )


def empty_problems(config: TollwayConfig, source: str) -> list[str]:
    """One line when the file defines nothing (a truncated file reads as that); else none."""
    if not is_empty(config):
        return []
    return [
        f"{source}: the file defines nothing (no providers, models, consumers, meters or catalog): refused, "
        f"as a file truncated by a redirect or a half-finished write would be; {ALLOW_HINT}"
    ]


@dataclass(frozen=True)
class Removals:
    providers: tuple[str, ...]
    models: tuple[str, ...]
    consumers: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.providers or self.models or self.consumers)

    def describe(self) -> str:
        parts = [
            f"{what} {', '.join(names)}"
            for what, names in (("providers", self.providers), ("models", self.models), ("consumers", self.consumers))
            if names
        ]
        return "; ".join(parts)


def removals(running: TollwayConfig, new: TollwayConfig) -> Removals:
    def gone(before: list[str], after: list[str]) -> tuple[str, ...]:
        kept = set(after)
        return tuple(name for name in before if name not in kept)

    return Removals(
        providers=gone([p.name for p in running.providers], [p.name for p in new.providers]),
        models=gone([m.name for m in running.models], [m.name for m in new.models]),
        consumers=gone([c.username for c in running.consumers], [c.username for c in new.consumers]),
    )


def shrink_problems(running: TollwayConfig, new: TollwayConfig, source: str) -> list[str]:
    """Why a reload from `running` to `new` looks like a truncated file (one line), or none."""
    problems = empty_problems(new, source)
    if problems:
        return problems
    counts = [
        (what, len(before), len(after))
        for what, before, after in (
            ("providers", running.providers, new.providers),
            ("models", running.models, new.models),
            ("consumers", running.consumers, new.consumers),
        )
    ]
    emptied = [what for what, before, after in counts if before and not after]
    if emptied:
        return [f"{source}: the reload would remove every one of the running {' and '.join(emptied)}; {ALLOW_HINT}"]
    if all(after < before for _, before, after in counts):
        shown = ", ".join(f"{what} {before} -> {after}" for what, before, after in counts)
        return [f"{source}: the reload would shrink providers, models and consumers at once ({shown}); {ALLOW_HINT}"]
    return []
