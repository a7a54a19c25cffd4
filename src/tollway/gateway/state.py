"""What the hot path reads per request, built once from configuration and swapped whole on change."""

from __future__ import annotations

from dataclasses import dataclass

from tollway.gateway.routing import Router
from tollway.identity.key_index import KeyIndex
from tollway.metering.llm import TokenPrice


@dataclass(frozen=True)
class GatewayState:
    keys: KeyIndex
    router: Router
    prices: dict[tuple[str, str], TokenPrice]  # by (provider name, upstream model)
