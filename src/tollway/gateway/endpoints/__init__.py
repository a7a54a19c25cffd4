"""Endpoints in API formats other than OpenAI chat: Anthropic Messages and OpenAI Responses.

Each one adapts the route's providers to its format (natively where the provider speaks it, else
by translation through OpenAI chat) and reuses the gateway's routing, fallback, relay and metering.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollway.gateway.app import Gateway


def install_endpoints(gateway: Gateway) -> None:
    from tollway.gateway.endpoints.messages import CountTokensEndpoint, MessagesEndpoint
    from tollway.gateway.endpoints.responses import ResponsesEndpoint

    messages = MessagesEndpoint(gateway)
    gateway.routes[messages.path] = ("POST", messages)
    gateway.error_shapes[messages.path] = messages.error_shape
    count = CountTokensEndpoint(gateway)
    gateway.routes[count.path] = ("POST", count)
    gateway.error_shapes[count.path] = messages.error_shape
    responses = ResponsesEndpoint(gateway)
    gateway.routes[responses.path] = ("POST", responses)
