"""The gateway's part of the composition root: the config file's routes, keys and prices as the gateway's state,
the routing share through Redis, the change feed, the access log, and the credentials the scrubber cuts out."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace

from tollway.adapters.redis.changes import RedisChangeFeed
from tollway.adapters.redis.routing import RedisRoutingShare
from tollway.adapters.redis.routing_sync import RedisRoutingSync
from tollway.adapters.sql.notify import PgChangeFeed, libpq_url
from tollway.auth_failures import AuthFailures
from tollway.changes import ChangeFeed
from tollway.config.resilience import target_resilience
from tollway.config.schema import TollwayConfig, configured_consumers
from tollway.gateway.access_log import AccessLog, AccessLogFormat
from tollway.gateway.app import Gateway
from tollway.gateway.balancing.policy import BalancingPolicy
from tollway.gateway.endpoint import LlmEndpoint
from tollway.gateway.endpoints.paths import path_endpoints
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.pricebook import lookup_context_window, lookup_price
from tollway.gateway.providers.base import Provider
from tollway.gateway.routing import Route, Router, Target
from tollway.gateway.state import GatewayState
from tollway.identity.directory import config_entries
from tollway.identity.key_index import KeyIndex
from tollway.metering.llm import TokenPrice
from tollway.settings import Settings


def configured_paths(config: TollwayConfig) -> dict[str, LlmEndpoint]:
    """The config file's `routes:` as endpoints at their paths."""
    return path_endpoints((r.path, r.type, r.model) for r in config.routes)


def gateway_state(config: TollwayConfig, providers: dict[str, Provider]) -> GatewayState:
    provider_configs = {p.name: p for p in config.providers}
    routes = {
        model.name: Route(
            model=model.name,
            targets=tuple(
                Target(
                    providers[t.provider],
                    t.model,
                    *target_resilience(t, model, provider_configs[t.provider]),
                    context_window=t.context_window
                    or lookup_context_window(provider_configs[t.provider].type, t.model),
                )
                for t in model.targets
            ),
            strict=model.translation == "strict",
            max_output_tokens=model.max_output_tokens,
        )
        for model in config.models
    }
    aliases = {alias: model.name for model in config.models for alias in model.aliases}
    patterns = [(model.pattern, model.name) for model in config.models if model.pattern is not None]
    entries = config_entries(configured_consumers(config.consumers))
    provider_types = {p.name: p.type for p in config.providers}
    prices: dict[tuple[str, str], TokenPrice] = {}
    for model in config.models:
        for target in model.targets:
            if model.price is not None:
                price: TokenPrice | None = TokenPrice(
                    input=model.price.input,
                    output=model.price.output,
                    cache_read=model.price.cache_read,
                    cache_write=model.price.cache_write,
                )
            else:
                price = lookup_price(provider_types[target.provider], target.model)
            if price is not None:
                prices[(target.provider, target.model)] = price
    return GatewayState(keys=KeyIndex.build(entries), router=Router(routes, aliases, patterns), prices=prices)


def secrets_of(settings: Settings, config: TollwayConfig) -> list[str | None]:
    """The credentials Tollway holds that no answer or log line may show: provider keys, the admin and
    metrics tokens, the Stripe key and webhook signing secret."""
    return [
        *(p.api_key for p in config.providers),
        settings.admin_token,
        settings.metrics_token,
        settings.stripe_secret_key,
        settings.stripe_webhook_secret,
        settings.dashboard_secret,
    ]


def routing_share(
    settings: Settings, policy: BalancingPolicy, auth_failures: AuthFailures, metrics: GatewayMetrics
) -> RedisRoutingShare | None:
    """With TOLLWAY_REDIS_URL: breaker moves and cool-downs shared by every gateway, and the counts behind them
    (per-target budgets, breaker failure counts, latency averages) counted across them (docs/deployment.md)."""
    if not settings.redis_url:
        return None
    sync = RedisRoutingSync(settings.redis_url, policy.exchange, policy.forget, prefix=settings.routing_redis_prefix)
    share = RedisRoutingShare(
        settings.redis_url,
        policy.adopt,
        prefix=settings.routing_redis_prefix,
        auth_limit=settings.auth_failure_limit,
        block=auth_failures.block,
        sync=sync,
    )
    policy.share = share.publish
    auth_failures.share = share.auth_failed
    metrics.add_gauge(
        "tollway_routing_shared",
        "1 while breaker moves, cool-downs, per-target budgets, failure counts and latency averages are shared"
        " with the other gateways through Redis; 0 while Redis is unreachable (each gateway keeps its own).",
        lambda: int(share.shared),
        mode="livemin",
    )
    return share


def change_feed(settings: Settings) -> ChangeFeed | None:
    """How this process hears of key and catalog changes made by the others at once (docs/deployment.md): on
    PostgreSQL its LISTEN/NOTIFY; on a database without a feed (SQLite), Redis pub/sub when TOLLWAY_REDIS_URL is
    set; else none (the version polls alone)."""
    conninfo = libpq_url(settings.database_url)
    if conninfo is not None:
        return PgChangeFeed(conninfo)
    if settings.redis_url:
        return RedisChangeFeed(settings.redis_url, prefix=settings.routing_redis_prefix)
    return None


def publish_keys(gateway: Gateway) -> Callable[[KeyIndex], None]:
    """How the key directory swaps a fresh key index into the gateway (the rest of its state kept)."""

    def publish(index: KeyIndex) -> None:
        gateway.state = replace(gateway.state, keys=index)

    return publish


def open_access_log(settings: Settings) -> AccessLog | None:
    """The access log the settings ask for (TOLLWAY_ACCESS_LOG=text|json), on TOLLWAY_ACCESS_LOG_FILE or stderr."""
    if settings.access_log == "off":
        return None
    fmt: AccessLogFormat = "json" if settings.access_log == "json" else "text"
    if settings.access_log_file:
        return AccessLog(open(settings.access_log_file, "a", encoding="utf-8"), fmt, owns_stream=True)
    return AccessLog(sys.stderr, fmt)
