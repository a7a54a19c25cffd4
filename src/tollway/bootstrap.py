"""The composition root: every object is built and wired here, and nowhere else."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from tollway.adapters.journal.file import FileJournal
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.api.app import create_management_app
from tollway.asgi import TollwayApp
from tollway.clock import Clock, SystemClock
from tollway.config.loader import load_config
from tollway.config.schema import TollwayConfig
from tollway.gateway.app import Gateway, GatewayLimits
from tollway.gateway.auth import Consumer, KeyIndex, hash_key
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.providers.base import Provider
from tollway.gateway.providers.registry import build_provider
from tollway.gateway.routing import Route, Router, Target
from tollway.gateway.state import GatewayState
from tollway.metering.llm import TokenPrice
from tollway.metering.meters import Meter
from tollway.metering.pipeline import UsagePipeline
from tollway.metering.service import MeteringService
from tollway.metering.worker import RollupWorker
from tollway.settings import Settings

log = logging.getLogger("tollway")


def gateway_state(config: TollwayConfig, providers: dict[str, Provider]) -> GatewayState:
    routes = {
        model.name: Route(
            model=model.name,
            targets=tuple(Target(provider=providers[t.provider], model=t.model) for t in model.targets),
        )
        for model in config.models
    }
    entries: list[tuple[str, Consumer]] = []
    for consumer in config.consumers:
        identity = Consumer(
            username=consumer.username,
            models=frozenset(consumer.models) if consumer.models is not None else None,
        )
        entries.extend((hash_key(key), identity) for key in consumer.keys)
        entries.extend((digest, identity) for digest in consumer.key_hashes)
    prices = {
        model.name: TokenPrice(
            input=model.price.input,
            output=model.price.output,
            cache_read=model.price.cache_read,
            cache_write=model.price.cache_write,
        )
        for model in config.models
        if model.price is not None
    }
    return GatewayState(keys=KeyIndex.build(entries), router=Router(routes), prices=prices)


@dataclass
class Runtime:
    """Everything one Tollway process holds, with its start and stop."""

    settings: Settings
    config: TollwayConfig
    clock: Clock
    store: SqlEventStore
    pipeline: UsagePipeline
    metering: MeteringService
    gateway: Gateway
    metrics: GatewayMetrics
    rollups: RollupWorker
    providers: dict[str, Provider] = field(default_factory=dict)

    async def start(self) -> None:
        await asyncio.to_thread(upgrade, self.store.engine)
        await self.metering.sync_meters([Meter.from_record(m.record()) for m in self.config.meters])
        self.rollups.start()
        for provider in self.providers.values():
            await provider.start()
        await self.pipeline.start()

    async def stop(self) -> None:
        await self.rollups.stop()
        stored = await self.pipeline.stop(timeout_s=10.0)
        if not stored:
            log.error("usage backlog kept in the journal: %d events", self.pipeline.backlog)
        for provider in self.providers.values():
            await provider.close()
        await self.store.close()


def build_runtime(settings: Settings, config: TollwayConfig, clock: Clock | None = None) -> Runtime:
    clock = clock or SystemClock()
    store = SqlEventStore(create_sql_engine(settings.database_url), clock)
    journal = FileJournal(settings.journal_path)
    pipeline = UsagePipeline(store, journal, batch_size=settings.flush_batch_size, interval_s=settings.flush_interval_s)
    providers = {
        p.name: build_provider(p, clock=clock, default_timeout_s=settings.upstream_timeout_s) for p in config.providers
    }
    metrics = GatewayMetrics()
    metrics.add_gauge(
        "tollway_usage_backlog_events", "Usage events not yet stored (journal backlog).", lambda: pipeline.backlog
    )
    metrics.add_gauge(
        "tollway_usage_flush_failures",
        "Failed attempts to store usage events since start.",
        lambda: pipeline.flush_failures_total,
    )
    gateway = Gateway(
        gateway_state(config, providers),
        pipeline,
        metrics,
        clock,
        GatewayLimits(max_body_bytes=settings.max_body_bytes, drain_timeout_s=settings.drain_timeout_s),
    )
    stats = store.stats
    for name, help_text, read in (
        ("tollway_events_stored", "Events stored since start (new ones).", lambda: stats.inserted_total),
        (
            "tollway_events_duplicates",
            "Events skipped as duplicates of a stored (source, id).",
            lambda: stats.duplicates_total,
        ),
        (
            "tollway_events_conflicts",
            "Events whose (source, id) was stored with different content (first copy kept).",
            lambda: stats.conflicts_total,
        ),
        (
            "tollway_meter_skipped_values",
            "Events a meter skipped: value missing, or not a number where one is needed.",
            lambda: stats.skipped_values_total,
        ),
    ):
        metrics.add_gauge(name, help_text, read)
    metering = MeteringService(store, clock)
    rollups = RollupWorker(store)
    metrics.add_gauge(
        "tollway_rollup_events", "Events folded into meter rollups since start.", lambda: rollups.rolled_total
    )
    return Runtime(
        settings=settings,
        config=config,
        clock=clock,
        store=store,
        pipeline=pipeline,
        metering=metering,
        gateway=gateway,
        metrics=metrics,
        rollups=rollups,
        providers=providers,
    )


def build_app(runtime: Runtime) -> TollwayApp:
    management = create_management_app(metering=runtime.metering, admin_token=runtime.settings.admin_token)
    return TollwayApp(
        gateway=runtime.gateway,
        management=management,
        metrics=runtime.metrics,
        ready=runtime.store.ping,
        startup=runtime.start,
        shutdown=runtime.stop,
    )


def app_from_env() -> TollwayApp:
    """ASGI factory for multi-worker serving: settings from TOLLWAY_*, config from TOLLWAY_CONFIG."""
    settings = Settings.from_env()
    config = load_config(settings.config, settings.env) if settings.config else TollwayConfig()
    return build_app(build_runtime(settings, config))
