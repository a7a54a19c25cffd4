"""A serving process's runtime: everything the composition root built for it, with its start, its stop and
its reload on SIGHUP."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tollway.adapters.redis.routing import RedisRoutingShare
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.store import SqlEventStore
from tollway.adapters.stripe.client import StripeApi
from tollway.adapters.stripe.sync import StripeSync
from tollway.asgi import NotReady
from tollway.auth_failures import AuthFailures
from tollway.billing.catalog import Catalog
from tollway.billing.catalog.unit_grant_service import UnitGrantService
from tollway.billing.credit_accounts.service import CreditService
from tollway.billing.invoicing.preview import InvoicePreview
from tollway.billing.invoicing.service import InvoiceService
from tollway.billing.invoicing.worker import BillingWorker
from tollway.changes import Changes
from tollway.clock import Clock
from tollway.config.guard import empty_problems, removals, shrink_problems
from tollway.config.loader import load_config
from tollway.config.schema import TollwayConfig, balanced_models, configured_consumers
from tollway.errors import ConfigError, DomainError
from tollway.gateway.app import Gateway
from tollway.gateway.balancing.health import HealthChecks
from tollway.gateway.balancing.policy import BalancingPolicy
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.multiprocess_metrics import MultiprocessExposition
from tollway.gateway.providers.base import Provider
from tollway.identity.directory import KeyDirectory
from tollway.identity.service import IdentityService
from tollway.metering.backlog import BacklogWatch
from tollway.metering.meters import Meter
from tollway.metering.service import MeteringService
from tollway.metering.sink import UsageSink
from tollway.metering.worker import RollupWorker
from tollway.notifications.service import NotificationService
from tollway.notifications.worker import NotificationWorker
from tollway.runtime.config import apply_budgets, apply_catalog, apply_credits, apply_notifications, catalog_problems
from tollway.scrub import Scrubber, scrub_logs
from tollway.settings import Settings
from tollway.spend.budgets import Budget, BudgetStatus
from tollway.spend.budgets_service import BudgetService
from tollway.spend.keeper import RulesKeeper
from tollway.spend.ports import CounterStore
from tollway.wiring.gateway import configured_paths, gateway_state, secrets_of
from tollway.wiring.providers import build_provider

if TYPE_CHECKING:  # OpenTelemetry is imported only when tracing is on
    from tollway.wiring.telemetry import Telemetry

log = logging.getLogger("tollway")


@dataclass
class Runtime:
    """Everything one Tollway process holds, with its start and stop."""

    settings: Settings
    config: TollwayConfig
    clock: Clock
    store: SqlEventStore
    pipeline: UsageSink
    metering: MeteringService
    gateway: Gateway
    metrics: GatewayMetrics
    rollups: RollupWorker
    identity: IdentityService
    keys: KeyDirectory
    catalog: Catalog
    providers: dict[str, Provider] = field(default_factory=dict)
    invoice_preview: InvoicePreview | None = None
    stop_report: str = ""  # one line on what the last stop did with pending usage
    invoices: InvoiceService | None = None
    billing: BillingWorker | None = None  # period close + Stripe sync; started when settings.billing_worker
    stripe: StripeApi | None = None  # the sync step's HTTP session, closed on stop
    stripe_sync: StripeSync | None = None  # the dashboard's "resync to Stripe" (reconcile one invoice)
    scrubber: Scrubber = field(default_factory=Scrubber)  # the credentials cut out of relayed errors and logs
    auth_failures: AuthFailures | None = None  # shared by the gateway and the management API
    _unscrub_logs: Callable[[], None] | None = None
    _background: set[asyncio.Task[object]] = field(default_factory=set)
    _retired: list[Provider] = field(default_factory=list)
    policy: BalancingPolicy | None = None  # routing: balancing, breakers, budgets (kept across reloads)
    routing_share: RedisRoutingShare | None = None  # the policy's breakers and cool-downs shared through Redis
    health_checks: HealthChecks | None = None
    spend: RulesKeeper | None = None  # spend control's rules snapshot (and counter reconciler)
    counters: CounterStore | None = None
    notifications: NotificationService | None = None
    notifier: NotificationWorker | None = None  # deliveries and event detection; runs with the billing worker
    webhook_secrets: list[str] = field(default_factory=list)  # the channels' signing secrets, scrubbed too
    budgets: BudgetService | None = None
    budget_status: Callable[[Budget], Awaitable[BudgetStatus]] | None = None
    credits: CreditService | None = None
    unit_grants: UnitGrantService | None = None
    changes: Changes | None = None  # management writes: refreshed here at once, announced to the other processes
    backlog_watch: BacklogWatch | None = None  # a warning a minute while usage waits too long to be stored
    shared_metrics: MultiprocessExposition | None = None  # serve --workers N: this worker's metrics, flushed
    telemetry: Telemetry | None = None  # OpenTelemetry's providers, when tracing is on: flushed on stop
    started: bool = False

    async def start(self) -> None:
        guarded = self.settings.config and not self.settings.allow_empty_config
        if guarded and (problems := empty_problems(self.config, self.settings.config or "")):
            raise ConfigError(problems)
        self._unscrub_logs = scrub_logs(self.scrubber)
        await asyncio.to_thread(upgrade, self.store.engine)
        await self.metering.sync_meters([Meter.from_record(m.record()) for m in self.config.meters])
        await apply_catalog(self.config, self.catalog, self.metering, self.clock)
        await apply_budgets(self.budgets, self.config)
        await apply_credits(self.credits, self.unit_grants, self.config)
        if self.spend is not None:
            await self.spend.refresh()  # limits hold from the first request
            self.spend.start()
        await self.identity.sync_config(configured_consumers(self.config.consumers))
        await apply_notifications(self.notifications, self.config)
        self.identity.known_models = frozenset(m.name for m in self.config.models)
        self.gateway.state = replace(
            self.gateway.state, keys=self.keys.set_config(configured_consumers(self.config.consumers))
        )
        await self.keys.refresh()  # stored keys work from the first request
        self.keys.start()
        if self.settings.ingest != "external":
            self.rollups.start()  # with external ingest, `tollway worker` (or serve's storage process) rolls up
        for provider in self.providers.values():
            await provider.start()
        await self.pipeline.start()
        if self.health_checks is not None:
            self.health_checks.start(self.providers)
        if self.routing_share is not None:
            self.routing_share.start()
        if self.billing is not None and self.settings.billing_worker:
            self.billing.start()
            if self.notifier is not None:
                self.notifier.start()
        if self.changes is not None:
            self.changes.start()
        if self.backlog_watch is not None:
            self._spawn(self.backlog_watch.run())
        if self.shared_metrics is not None:
            self._spawn(self.shared_metrics.run())
        if self.settings.config:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._reload_soon)
        self.started = True

    async def ready(self) -> None:
        """Raise NotReady unless this process can take requests (/readyz). The store is not asked: during a
        database outage the gateway keeps serving and journaling (`/readyz?storage=1` asks it)."""
        if not self.started:
            raise NotReady("starting")
        try:
            self.pipeline.probe()
        except OSError as exc:
            raise NotReady(f"usage journal unwritable: {exc}") from None

    async def after_change(self) -> None:
        if self.changes is not None:
            await self.changes.changed_here()

    async def stop(self) -> None:
        self.started = False
        await self.pipeline.halt()  # first: a flush hanging on the database must not wait for the rest
        if self.settings.config:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self.changes is not None:
            await self.changes.stop()
        if self.billing is not None:
            await self.billing.stop()
        if self.notifier is not None:
            await self.notifier.stop()
        if self.stripe is not None:
            await self.stripe.close()
        await self.rollups.stop()
        await self.keys.stop()
        if self.spend is not None:
            await self.spend.stop()
        pending = self.pipeline.backlog
        stored = await self.pipeline.stop(timeout_s=10.0)
        if stored:
            self.stop_report = f"tollway stopped: {pending} pending usage events flushed, nothing left behind"
        else:
            log.error("usage backlog kept in the journal: %d events", self.pipeline.backlog)
            self.stop_report = (
                f"tollway stopped: {self.pipeline.backlog} usage events kept in the journal "
                "(stored at the next start or by `tollway worker`)"
            )
        for task in self._background:
            task.cancel()
        if self.shared_metrics is not None:
            self.shared_metrics.close()  # its counts stay in the server's exposition, its gauges leave it
        if self.telemetry is not None:
            await asyncio.to_thread(self.telemetry.shutdown)  # the last spans and metrics exported
        if self.health_checks is not None:
            await self.health_checks.stop()
        if self.routing_share is not None:
            await self.routing_share.close()
        for provider in [*self.providers.values(), *self._retired]:
            await provider.close()
        self.gateway.close()
        if self.counters is not None:
            await self.counters.close()
        await self.store.close()
        if self._unscrub_logs is not None:
            self._unscrub_logs()

    def _reload_soon(self) -> None:
        self._spawn(self._reload_logged())

    async def _reload_logged(self) -> None:
        """A reload on SIGHUP: whatever goes wrong is logged (never an unretrieved task exception)."""
        try:
            await self.reload()
        except Exception:
            log.exception("config reload failed; the running config is kept where it was not yet replaced")

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def reload(self) -> bool:
        """Re-read the config file and swap the gateway's keys, routes and prices (on SIGHUP).

        Providers whose settings did not change are kept with their connection pools; replaced
        ones are closed once requests still using them have had time to finish. An invalid file
        changes nothing.
        """
        if not self.settings.config:
            return False
        try:
            config = await asyncio.to_thread(load_config, self.settings.config, self.settings.env)
        except ConfigError as exc:
            for line in exc.problems:
                log.error("config reload refused: %s", line)
            return False
        if not self.settings.allow_empty_config and (
            problems := shrink_problems(self.config, config, self.settings.config)
        ):
            for line in problems:
                log.error("config reload refused: %s", line)
            return False
        if problems := await catalog_problems(config, self.catalog, self.metering, self.clock):
            for line in problems:
                log.error("config reload refused: catalog: %s", line)
            return False
        if removed := removals(self.config, config):
            log.warning(
                "config reload removes %s (API-issued keys of removed consumers are kept, usable again when the "
                "file lists the consumer again)",
                removed.describe(),
            )
        previous = {p.name: p for p in self.config.providers}
        providers: dict[str, Provider] = {}
        for provider_config in config.providers:
            kept = self.providers.get(provider_config.name)
            if kept is not None and previous.get(provider_config.name) == provider_config:
                providers[provider_config.name] = kept
                continue
            fresh = build_provider(
                provider_config, clock=self.clock, default_timeout_s=self.settings.upstream_timeout_s
            )
            await fresh.start()
            providers[provider_config.name] = fresh
        retired = [p for name, p in self.providers.items() if providers.get(name) is not p]
        try:
            await self.metering.sync_meters([Meter.from_record(m.record()) for m in config.meters])
        except DomainError as exc:
            log.error("config reload refused: meters: %s", exc.message)
            for fresh in providers.values():
                if fresh not in self.providers.values():
                    await fresh.close()
            return False
        try:
            await apply_catalog(config, self.catalog, self.metering, self.clock)
            await apply_budgets(self.budgets, config)
            await apply_credits(self.credits, self.unit_grants, config)
        except ConfigError as exc:
            for line in exc.problems:
                log.error("config reload: %s", line)
        if self.spend is not None:
            try:
                await self.spend.refresh()
            except Exception:  # the loop retries
                log.warning("spend rules not refreshed after the reload", exc_info=True)
        state = gateway_state(config, providers)
        if self.policy is not None:  # targets that did not change keep their breaker and latency figures
            self.policy.configure(balanced_models(config.models, config.providers), state.prices)
        self.gateway.state = replace(state, keys=self.keys.set_config(configured_consumers(config.consumers)))
        self.gateway.paths = configured_paths(config)
        if self.health_checks is not None:
            await self.health_checks.restart(providers)
        self.identity.known_models = frozenset(m.name for m in config.models)
        try:
            await self.identity.sync_config(configured_consumers(config.consumers))
        except DomainError as exc:  # the file's keys work already; the store catches up on the next reload
            log.error("config reload: consumers not synced to the database: %s", exc.message)
        try:
            await apply_notifications(self.notifications, config)
        except DomainError as exc:
            log.error("config reload: notifications: %s", exc.message)
        self.config, self.providers = config, providers
        self.scrubber.update([*secrets_of(self.settings, config), *self.webhook_secrets])
        if retired:
            self._retired.extend(retired)
            self._spawn(self._close_later(retired, self.settings.upstream_timeout_s))
        log.warning(
            "config reloaded: %d models, %d consumers, %d providers replaced",
            len(config.models),
            len(config.consumers),
            len(retired),
        )
        return True

    def set_webhook_secrets(self, secrets: list[str]) -> None:
        """The channels' signing secrets changed: scrub them from logs like the other credentials."""
        self.webhook_secrets = secrets
        self.scrubber.update([*secrets_of(self.settings, self.config), *secrets])

    async def _close_later(self, providers: list[Provider], grace_s: float) -> None:
        await asyncio.sleep(grace_s)
        for provider in providers:
            self._retired.remove(provider)
            await provider.close()
