"""Model routing: which models a consumer may use and which provider target serves each."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tollway.gateway.providers.base import Provider
from tollway.gateway.resilience import DEFAULT_RETRY, NO_TIMEOUTS, RetryPolicy, Timeouts
from tollway.identity.key_index import Identity


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    model: str
    retry: RetryPolicy = DEFAULT_RETRY  # failover settings read when this target is tried
    timeouts: Timeouts = NO_TIMEOUTS
    context_window: int | None = None  # tokens, when known: a prompt estimated larger goes elsewhere


@dataclass(frozen=True, slots=True)
class Route:
    model: str  # the model entry's name (what usage is recorded under); clients may reach it by other names
    targets: tuple[Target, ...]
    strict: bool = False  # translation: strict (fields a translation would drop get a 400)
    max_output_tokens: int | None = None  # spend control: output tokens reserved for a request that sets none


class Router:
    """Names to routes: a model's exact name wins over an alias, an alias over a pattern; among patterns
    the most specific wins (most literal characters, then the longest, then the first configured)."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        aliases: Mapping[str, str] | None = None,
        patterns: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._routes = dict(routes)
        self._aliases = {alias: self._routes[name] for alias, name in (aliases or {}).items()}
        ranked = sorted(enumerate(patterns), key=lambda item: (-_literal_chars(item[1][0]), -len(item[1][0]), item[0]))
        self._patterns = [(re.compile(fnmatch.translate(glob)), self._routes[name]) for _, (glob, name) in ranked]

    def resolve(self, consumer: Identity, model: str) -> Route | None:
        """The route for the name `model`, or None when no model answers to it or the consumer may not use it.

        A consumer's allow-list may name a model (then every name reaching that model is allowed) or
        an alias (then only that alias)."""
        route = self._routes.get(model) or self._aliases.get(model) or self._match(model)
        if route is None:
            return None
        if consumer.models is not None and model not in consumer.models and route.model not in consumer.models:
            return None
        return route

    def _match(self, model: str) -> Route | None:
        for pattern, route in self._patterns:
            if pattern.match(model):
                return route
        return None

    def visible_to(self, consumer: Identity) -> list[str]:
        """The exact names (models and aliases) the consumer may ask for; patterns are not listed."""
        allowed = consumer.models
        names = [(name, route.model) for name, route in (*self._routes.items(), *self._aliases.items())]
        return sorted(name for name, owner in names if allowed is None or name in allowed or owner in allowed)


def _literal_chars(glob: str) -> int:
    return sum(1 for char in glob if char not in "*?")
