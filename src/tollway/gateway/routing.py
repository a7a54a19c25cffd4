"""Model routing: which models a consumer may use and which provider target serves each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tollway.gateway.auth import Consumer
from tollway.gateway.providers.base import Provider


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    model: str


@dataclass(frozen=True, slots=True)
class Route:
    model: str  # the name clients use
    targets: tuple[Target, ...]


class Router:
    def __init__(self, routes: Mapping[str, Route]) -> None:
        self._routes = dict(routes)

    def resolve(self, consumer: Consumer, model: str) -> Route | None:
        """The route for `model`, or None when it does not exist or the consumer may not use it."""
        if consumer.models is not None and model not in consumer.models:
            return None
        return self._routes.get(model)

    def visible_to(self, consumer: Consumer) -> list[str]:
        return sorted(name for name in self._routes if consumer.models is None or name in consumer.models)
