"""The composition root: every object is built and wired here, and nowhere else."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from tollway.adapters.journal.file import FileJournal, claim_segments, lease_holder
from tollway.adapters.memory.counters import MemoryCounterStore
from tollway.adapters.redis.counters import RedisCounterStore
from tollway.adapters.redis.routing import RedisRoutingShare
from tollway.adapters.sql.budgets import SqlBudgetStore
from tollway.adapters.sql.catalog import SqlCatalogStore
from tollway.adapters.sql.credits import SqlCreditStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.identity import SqlIdentityStore
from tollway.adapters.sql.invoices import SqlInvoiceStore
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.notifications import SqlNotificationStore
from tollway.adapters.sql.notify import PgChangeFeed, libpq_url
from tollway.adapters.sql.store import SqlEventStore
from tollway.adapters.sql.unit_grants import SqlUnitGrantStore
from tollway.adapters.stripe.client import StripeApi
from tollway.adapters.stripe.sync import StripeSync
from tollway.adapters.stripe.webhooks import StripeWebhooks
from tollway.adapters.webhooks.sender import resolve
from tollway.api.app import create_management_app
from tollway.api.billing_profiles import BillingProfileInfo
from tollway.asgi import NotReady, TollwayApp
from tollway.auth_failures import AuthFailures
from tollway.billing.credits.service import CreditService
from tollway.billing.credits.topups import TopUps
from tollway.billing.grants.service import UnitGrantService
from tollway.billing.invoicing.close import CloseSettings, PeriodCloser
from tollway.billing.invoicing.model import Invoice
from tollway.billing.invoicing.ports import NOTIFY_CREATED, STRIPE_SYNC
from tollway.billing.invoicing.preview import InvoicePreview
from tollway.billing.invoicing.render import InvoiceDocuments, Seller
from tollway.billing.invoicing.service import InvoiceService
from tollway.billing.invoicing.usage import MeteringUsageReader
from tollway.billing.invoicing.worker import BillingWorker, SyncStep
from tollway.billing.service import CatalogService, CustomerSubjects
from tollway.changes import Changes
from tollway.clock import Clock, SystemClock
from tollway.config.guard import empty_problems, removals, shrink_problems
from tollway.config.loader import load_config
from tollway.config.schema import TollwayConfig, configured_consumers
from tollway.config.sync import apply_config_credits, apply_config_unit_grants
from tollway.dashboard_root import build_dashboard, key_usage_endpoint, portal_tokens
from tollway.errors import ConfigError, DomainError
from tollway.gateway.access_log import AccessLog, AccessLogFormat
from tollway.gateway.admission import GatewayAdmission
from tollway.gateway.app import Gateway
from tollway.gateway.balancing.health import HealthChecks
from tollway.gateway.balancing.policy import BalancingPolicy
from tollway.gateway.balancing.tokens import TokenCounting
from tollway.gateway.endpoint import LlmEndpoint
from tollway.gateway.endpoints import ENDPOINTS
from tollway.gateway.endpoints.paths import path_endpoints
from tollway.gateway.hooks import Admission
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.pricebook import lookup_context_window, lookup_price
from tollway.gateway.process_metrics import ProcessMetrics
from tollway.gateway.providers.base import Provider
from tollway.gateway.providers.registry import build_provider
from tollway.gateway.refusals import NoticeRefusals
from tollway.gateway.relay import GatewayLimits
from tollway.gateway.resilience import target_resilience
from tollway.gateway.routing import Route, Router, Target
from tollway.gateway.shared_metrics import SharedExposition
from tollway.gateway.state import GatewayState
from tollway.identity.directory import KeyDirectory, config_entries
from tollway.identity.key_index import KeyIndex
from tollway.identity.service import IdentityService
from tollway.metering.backlog import BacklogWatch
from tollway.metering.journaling import JournalWriter
from tollway.metering.llm import TokenPrice
from tollway.metering.meters import Meter
from tollway.metering.pipeline import UsagePipeline
from tollway.metering.retention import Retention, effective_retention
from tollway.metering.running_totals import RunningTotals
from tollway.metering.service import MeteringService
from tollway.metering.sink import UsageSink
from tollway.metering.spool import HandOffSink, JournalIngester
from tollway.metering.worker import RollupWorker
from tollway.metrics import Counter
from tollway.notifications.delivery import Count
from tollway.notifications.service import NotificationService
from tollway.notifications.worker import NotificationWorker
from tollway.notifications_root import apply_config_notifications, notification_worker, payment_failed_notice
from tollway.scrub import Scrubber, scrub_logs
from tollway.settings import Settings
from tollway.spend.admission import SpendAdmission
from tollway.spend.budget_usage import BudgetUsage
from tollway.spend.budgets import Budget, BudgetStatus
from tollway.spend.budgets_service import BudgetService
from tollway.spend.keeper import RulesKeeper
from tollway.spend.ports import CounterStore
from tollway.spend.usage import MeteredUsage

log = logging.getLogger("tollway")


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
    catalog: CatalogService
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
    shared_metrics: SharedExposition | None = None  # serve --workers N: this worker's metrics, published
    started: bool = False

    async def start(self) -> None:
        guarded = self.settings.config and not self.settings.allow_empty_config
        if guarded and (problems := empty_problems(self.config, self.settings.config or "")):
            raise ConfigError(problems)
        self._unscrub_logs = scrub_logs(self.scrubber)
        await asyncio.to_thread(upgrade, self.store.engine)
        await self.metering.sync_meters([Meter.from_record(m.record()) for m in self.config.meters])
        await self._apply_catalog(self.config)
        await self._apply_budgets(self.config)
        await self._apply_credits(self.config)
        if self.spend is not None:
            await self.spend.refresh()  # limits hold from the first request
            self.spend.start()
        await self.identity.sync_config(configured_consumers(self.config.consumers))
        await self._apply_notifications(self.config)
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
        if problems := await self._catalog_problems(config):
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
            await self._apply_catalog(config)
            await self._apply_budgets(config)
            await self._apply_credits(config)
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
            self.policy.configure(config.models, config.providers, state.prices)
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
            await self._apply_notifications(config)
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

    async def _catalog_problems(self, config: TollwayConfig) -> list[str]:
        """What forbids applying the file's catalog (checked against the store; nothing written)."""
        if not _defines_catalog(config):
            return []
        from tollway.billing.apply import load_stored, plan_apply
        from tollway.config.sync import config_catalog

        stored = await load_stored(self.catalog, self.metering)
        return list(plan_apply(config_catalog(config), stored, self.clock.now()).problems)

    async def _apply_catalog(self, config: TollwayConfig) -> None:
        """Make the stored catalog what the file says (tollway.billing.apply); ConfigError, one line per problem.

        A file without features, plans or customers leaves the stored catalog alone (`tollway apply` manages it).
        """
        if not _defines_catalog(config):
            return
        from tollway.billing.apply import ApplyFailed, apply_catalog
        from tollway.config.sync import config_catalog

        desired = config_catalog(config)
        for attempt in (1, 2):
            try:
                plan = await apply_catalog(desired, self.catalog, self.metering, self.clock.now())
            except ApplyFailed as exc:
                if attempt == 2:
                    raise ConfigError([f"catalog: {exc}"]) from exc
                continue  # another process applying the same file at once: plan again against what it wrote
            if plan.problems:  # logged by the caller (start: the lifespan; reload: one line each)
                raise ConfigError([f"catalog: {line}" for line in plan.problems])
            for line in (*plan.notes, *plan.lines):
                log.info("catalog: %s", line)
            return

    def set_webhook_secrets(self, secrets: list[str]) -> None:
        """The channels' signing secrets changed: scrub them from logs like the other credentials."""
        self.webhook_secrets = secrets
        self.scrubber.update([*secrets_of(self.settings, self.config), *secrets])

    async def _apply_notifications(self, config: TollwayConfig) -> None:
        """The file's `notifications:` channels and rules, created or updated by name."""
        if self.notifications is not None:
            await self.notifications.publish_secrets()
            for line in await apply_config_notifications(self.notifications, config.notifications):
                log.info("notifications: %s", line)

    async def _apply_budgets(self, config: TollwayConfig) -> None:
        """Make the config-managed budgets what the file's `budgets:` says (a file without the section leaves
        them alone); ConfigError on a conflict with a budget made through the API."""
        if self.budgets is None or "budgets" not in config.model_fields_set:
            return
        try:
            lines = await self.budgets.sync_config([b.budget() for b in config.budgets])
        except DomainError as exc:
            raise ConfigError([f"budgets: {exc.message}"]) from exc
        for line in lines:
            log.info("budgets: %s", line)

    async def _apply_credits(self, config: TollwayConfig) -> None:
        """Each customer's `credits:` grants, created once (by key); ConfigError naming a changed one."""
        if self.credits is None:
            return
        changes, problems = await apply_config_credits(self.credits, config)
        if self.unit_grants is not None:
            more, unit_problems = await apply_config_unit_grants(self.unit_grants, config)
            changes, problems = changes + more, problems + unit_problems
        for line in changes:
            log.info("credits: %s", line)
        if problems:
            raise ConfigError(problems)

    async def _close_later(self, providers: list[Provider], grace_s: float) -> None:
        await asyncio.sleep(grace_s)
        for provider in providers:
            self._retired.remove(provider)
            await provider.close()


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


def _defines_catalog(config: TollwayConfig) -> bool:
    return bool({"features", "plans", "customers"} & config.model_fields_set)


@dataclass
class Services:
    """The stores and use-case services over one database: what `serve`, `worker` and every CLI command use."""

    settings: Settings
    clock: Clock
    store: SqlEventStore
    metering: MeteringService
    identity: IdentityService
    catalog: CatalogService
    invoice_preview: InvoicePreview
    invoices: InvoiceService
    notifications: NotificationService
    budgets: BudgetService
    spend: SpendAdmission  # spend control's admission over this process's counters (the gateway's, in serve)
    spend_keeper: RulesKeeper
    counters: CounterStore
    credits: CreditService
    budget_usage: BudgetUsage  # each budget's metered use in its window (budget alerts)
    unit_grants: UnitGrantService

    async def budget_status(self, budget: Budget) -> BudgetStatus:
        """The budget's current window as this process counts it (limits refreshed if the catalog moved)."""
        await self.spend_keeper.refresh()
        return await self.spend.budget_status(budget)

    async def open(self) -> None:
        """Migrate the database to the current schema."""
        await asyncio.to_thread(upgrade, self.store.engine)

    async def close(self) -> None:
        await self.counters.close()
        await self.store.close()


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    store = SqlEventStore(create_sql_engine(settings.database_url), clock)
    catalog_store = SqlCatalogStore(store.engine, clock)
    retention = effective_retention(
        settings.events_retention_period,
        lookback_days=settings.invoice_lookback_days,
        grace_s=settings.invoice_grace_s,
    )
    metering = MeteringService(store, clock, customers=CustomerSubjects(catalog_store), retention=retention)
    identity = IdentityService(SqlIdentityStore(store.engine), clock)
    catalog = CatalogService(catalog_store, metering, clock)
    invoices = InvoiceService(
        SqlInvoiceStore(store.engine, clock),
        catalog_store,
        clock,
        due=timedelta(days=settings.invoice_due_days),
        stripe=settings.stripe_secret_key is not None,
        notify=settings.notifications,
    )
    notifications = NotificationService(
        SqlNotificationStore(store.engine), clock, resolve=resolve, allow_private=settings.webhook_allow_private
    )
    credit_store = SqlCreditStore(store.engine)
    invoice_preview = InvoicePreview(catalog, MeteringUsageReader(metering), clock, credits=credit_store)
    topups = TopUps(
        credit_store,
        invoices.store,
        clock,
        due=timedelta(days=settings.invoice_due_days),
        enqueue=((STRIPE_SYNC,) if settings.stripe_secret_key is not None else ())
        + ((NOTIFY_CREATED,) if settings.notifications else ()),
    )
    credits = CreditService(credit_store, catalog_store, clock, preview=invoice_preview, topups=topups)

    async def topup_paid(invoice: Invoice) -> object:
        return await credits.settle_topups() if invoice.metadata.get("kind") == "topup" else None

    invoices.on_paid = topup_paid

    async def restore_credits(invoice: Invoice) -> object:
        return await credits.restore_invoice(invoice.id) if any(x.kind == "credit" for x in invoice.lines) else None

    invoices.on_void = restore_credits
    budget_store = SqlBudgetStore(store.engine, clock)
    counters: CounterStore
    if settings.redis_url:
        counters = RedisCounterStore(
            settings.redis_url, clock, prefix=settings.spend_redis_prefix, timeout_s=settings.spend_redis_timeout_s
        )
    else:
        counters = MemoryCounterStore(clock)
    unit_grant_store = SqlUnitGrantStore(store.engine)
    catalog.use_unit_grants(unit_grant_store)
    unit_grants = UnitGrantService(catalog, unit_grant_store)
    keeper = RulesKeeper(
        catalog_store,
        metering,
        budget_store,
        refresh_s=settings.spend_refresh_s,
        reconcile_s=settings.spend_reconcile_s,
        granted=unit_grants.granted_now,
        credits=credits.prepaid_balances,
        resets=unit_grant_store.list_resets,
    )
    credits.on_change = keeper.refresh_grants
    metered_usage = MeteredUsage(metering, RunningTotals(store, clock))
    unit_grants.on_change = keeper.refresh_grants
    spend = SpendAdmission(
        counters,
        metered_usage,
        clock,
        keeper.current,
        no_subscription="refuse" if settings.spend_no_subscription == "refuse" else "allow",
        on_unavailable="open" if settings.spend_redis_failure == "open" else "closed",
    )
    keeper.admission = spend
    return Services(
        settings=settings,
        clock=clock,
        store=store,
        metering=metering,
        identity=identity,
        catalog=catalog,
        invoice_preview=invoice_preview,
        invoices=invoices,
        notifications=notifications,
        budgets=BudgetService(budget_store, clock),
        spend=spend,
        spend_keeper=keeper,
        counters=counters,
        credits=credits,
        budget_usage=BudgetUsage(keeper.current, metered_usage, clock),
        unit_grants=unit_grants,
    )


def invoice_documents(services: Services) -> InvoiceDocuments:
    """Invoices as HTML and PDF documents, with the seller block from the TOLLWAY_SELLER_* settings."""
    return _documents(services.settings, services.invoices, services.catalog)


def _documents(settings: Settings, invoices: InvoiceService, catalog: CatalogService) -> InvoiceDocuments:
    seller = Seller(settings.seller_name, settings.seller_address, settings.seller_email)
    return InvoiceDocuments(invoices=invoices.store, customers=catalog, seller=seller)


def build_stripe_sync(services: Services) -> StripeSync | None:
    """The Stripe sync step of the billing worker; None (nothing is sent to Stripe) without a secret key."""
    settings = services.settings
    if not settings.stripe_secret_key:
        return None
    api = StripeApi(settings.stripe_secret_key, api_base=settings.stripe_api_base)
    return StripeSync(store=services.invoices.store, customers=services.catalog, api=api, clock=services.clock)


def build_billing_worker(
    services: Services, sync: SyncStep | None = None, release_sync: SyncStep | None = None
) -> BillingWorker:
    """The period closer over the services' stores, with the Stripe sync step when one is given."""
    settings = services.settings
    closer = PeriodCloser(
        store=services.invoices.store,
        catalog=services.catalog.store,
        reader=MeteringUsageReader(services.metering),
        clock=services.clock,
        settings=CloseSettings(
            grace=timedelta(seconds=settings.invoice_grace_s),
            auto_issue=settings.invoice_auto_issue,
            due=timedelta(days=settings.invoice_due_days),
            lookback=timedelta(days=settings.invoice_lookback_days),
            stripe=settings.stripe_secret_key is not None,
            notify=settings.notifications,
        ),
        credits=services.credits.store,
    )
    credits = services.credits

    async def credits_step() -> None:
        await credits.settle_topups()
        await credits.check_recharges()

    return BillingWorker(
        closer, sync=sync, release_sync=release_sync, interval_s=settings.billing_interval_s, credits=credits_step
    )


def build_notification_worker(services: Services, count: Count | None = None) -> NotificationWorker | None:
    """Deliveries and event detection (thresholds, resets, budgets, credits, invoice and subscription events);
    None when TOLLWAY_NOTIFICATIONS is off."""
    return notification_worker(
        services.settings,
        services.clock,
        services.notifications,
        services.catalog,
        services.invoices.store,
        count,
        budgets=services.budget_usage,
        refresh_budgets=services.spend_keeper.refresh,
        credits=services.credits,
    )


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


def build_runtime(
    settings: Settings, config: TollwayConfig, clock: Clock | None = None, *, journal: FileJournal | None = None
) -> Runtime:
    """`journal`: the usage journal (default: a FileJournal in settings.journal_path; tests fill its disk)."""
    services = build_services(settings, clock)
    stripe = build_stripe_sync(services)
    clock, store = services.clock, services.store
    journal = journal or FileJournal(settings.journal_path)
    providers = {
        p.name: build_provider(p, clock=clock, default_timeout_s=settings.upstream_timeout_s) for p in config.providers
    }
    metrics = GatewayMetrics()
    metrics.add_source(ProcessMetrics().render)  # process_* and python_*, as Prometheus' client libraries name them
    scrubber = Scrubber(secrets_of(settings, config))
    auth_failures = AuthFailures(metrics.auth_failures, limit=settings.auth_failure_limit)
    pipeline: UsageSink
    writer: JournalWriter
    if settings.ingest == "external":
        handing = HandOffSink(journal, interval_s=settings.flush_interval_s)
        pipeline, writer, backlog_age = handing, handing.writer, handing.backlog_age_s
    else:
        inline = UsagePipeline(
            store,
            journal,
            batch_size=settings.flush_batch_size,
            interval_s=settings.flush_interval_s,
            max_memory_events=settings.inline_max_backlog_events,
        )
        metrics.add_gauge(
            "tollway_usage_spills",
            "Times the unstored usage outgrew TOLLWAY_INLINE_MAX_BACKLOG_EVENTS and was kept in the journal only.",
            lambda: inline.spills_total,
        )
        metrics.add_counter(
            "tollway_usage_flush_failures_total",
            "Failed attempts to store usage events since start.",
            lambda: inline.flush_failures_total,
        )
        metrics.add_counter(
            "tollway_internal_errors_total",
            "Failures of usage storing that were not an outage (a bug; see the log): the batch is kept.",
            lambda: inline.internal_errors_total,
        )
        metrics.add_counter(
            "tollway_usage_interrupted_calls_total",
            "Calls a previous process did not see finish (killed while they ran), metered from their intents.",
            lambda: inline.interrupted_total,
        )
        pipeline, writer, backlog_age = inline, inline.writer, inline.backlog_age_s
    metrics.add_gauge(
        "tollway_usage_journal_writable",
        "1 while usage can be journaled; 0 after an append failed (a full disk): calls are refused (503).",
        lambda: int(writer.error is None),
    )
    metrics.add_counter(
        "tollway_usage_journal_failures_total",
        "Appends to the usage journal that failed since start.",
        lambda: writer.failures_total,
    )
    metrics.add_gauge(
        "tollway_usage_backlog_age_seconds",
        "Seconds the oldest usage this process took has waited to be stored (0: none waits). Inline: not yet"
        " stored by this gateway; external: handed over and not yet stored by a worker.",
        backlog_age,
    )
    metrics.add_gauge(
        "tollway_usage_backlog_events",
        "Usage events not yet stored (inline) or not yet handed to the worker (external).",
        lambda: pipeline.backlog,
    )
    state = gateway_state(config, providers)
    policy = BalancingPolicy(clock)
    policy.configure(config.models, config.providers, state.prices)
    metrics.add_source(policy.metrics.render)
    routing_share = None
    if settings.redis_url:  # breaker moves and cool-downs shared by every gateway (docs/deployment.md)
        routing_share = RedisRoutingShare(
            settings.redis_url,
            policy.adopt,
            prefix=settings.routing_redis_prefix,
            auth_limit=settings.auth_failure_limit,
            block=auth_failures.block,
        )
        policy.share = routing_share.publish
        auth_failures.share = routing_share.auth_failed
        shared = routing_share
        metrics.add_gauge(
            "tollway_routing_shared",
            "1 while breaker moves and cool-downs are shared with the other gateways through Redis; 0 while Redis"
            " is unreachable (each gateway keeps its own).",
            lambda: int(shared.up),
        )
    counters, keeper, spend = services.counters, services.spend_keeper, services.spend
    deliveries = Counter(
        "tollway_notification_deliveries_total",
        "Webhook delivery attempts by event type and outcome (success, retry, failed, gone).",
        ("event_type", "outcome"),
    )
    metrics.add_source(deliveries.render)
    notifier = build_notification_worker(services, lambda kind, outcome: deliveries.inc((kind, outcome)))
    if notifier is not None:
        metrics.add_gauge(
            "tollway_notification_outbox_oldest_pending_seconds",
            "Age of the oldest webhook delivery not yet done (0 when none), as of the last delivery round.",
            lambda: notifier.oldest_pending_age_s,
        )
    admission: Admission = GatewayAdmission(
        spend, lambda: gateway.state, clock, default_max_tokens=settings.spend_default_max_tokens
    )
    if notifier is not None:  # a refusal at a limit: budget.exceeded, and look for threshold events now
        admission = NoticeRefusals(admission, notifier.refused)
    gateway = Gateway(
        state,
        TokenCounting(pipeline, policy),
        metrics,
        clock,
        GatewayLimits(
            max_body_bytes=settings.max_body_bytes,
            drain_timeout_s=settings.drain_timeout_s,
            max_buffered_response_bytes=settings.max_buffered_response_bytes,
        ),
        access_log=open_access_log(settings),
        scrubber=scrubber,
        auth_failures=auth_failures,
        policy=policy,
        admission=admission,
        endpoints=(*ENDPOINTS, key_usage_endpoint(services, spend.budget_status)),
    )
    gateway.paths = configured_paths(config)
    stats = store.stats
    for name, help_text, read in (
        ("tollway_events_stored_total", "Events stored since start (new ones).", lambda: stats.inserted_total),
        (
            "tollway_events_duplicates_total",
            "Events skipped as duplicates of a stored (source, id).",
            lambda: stats.duplicates_total,
        ),
        (
            "tollway_events_conflicts_total",
            "Events whose (source, id) was stored with different content (first copy kept).",
            lambda: stats.conflicts_total,
        ),
        (
            "tollway_meter_skipped_values_total",
            "Events a meter skipped: value missing, or not a number where one is needed.",
            lambda: stats.skipped_values_total,
        ),
    ):
        metrics.add_counter(name, help_text, read)
    metering = services.metering
    rollups = rollup_worker(store, clock, metering.retention)
    metrics.add_counter(
        "tollway_rollup_events_total", "Events folded into meter rollups since start.", lambda: rollups.rolled_total
    )
    keys = KeyDirectory(services.identity.store, clock, publish_keys(gateway))
    metrics.add_gauge(
        "tollway_storage_up",
        "1 while the database answers this process's key poll (every 0.25 s); 0 during an outage (the gateway"
        " keeps serving and journaling usage).",
        lambda: int(not keys.failing),
    )
    conninfo = libpq_url(settings.database_url)
    changes = Changes([keys.refresh, keeper.refresh], PgChangeFeed(conninfo) if conninfo else None)
    published = SharedExposition(Path(settings.metrics_dir), metrics.render) if settings.metrics_dir else None
    if published is not None:
        metrics.shared_scrape = published.scrape
    runtime = Runtime(
        settings=settings,
        config=config,
        clock=clock,
        store=store,
        pipeline=pipeline,
        metering=metering,
        gateway=gateway,
        metrics=metrics,
        rollups=rollups,
        identity=services.identity,
        keys=keys,
        catalog=services.catalog,
        providers=providers,
        invoices=services.invoices,
        billing=build_billing_worker(
            services,
            stripe.run_once if stripe is not None else None,
            stripe.release if stripe is not None else None,
        ),
        stripe=stripe.api if stripe is not None else None,
        stripe_sync=stripe,
        invoice_preview=services.invoice_preview,
        scrubber=scrubber,
        auth_failures=auth_failures,
        policy=policy,
        health_checks=HealthChecks(policy),
        spend=keeper,
        counters=counters,
        notifications=services.notifications,
        notifier=notifier,
        budgets=services.budgets,
        budget_status=spend.budget_status,
        credits=services.credits,
        unit_grants=services.unit_grants,
        changes=changes,
        routing_share=routing_share,
        backlog_watch=BacklogWatch(backlog_age, threshold_s=settings.usage_backlog_alert_s),
        shared_metrics=published,
    )
    services.notifications.on_secrets(runtime.set_webhook_secrets)
    return runtime


def build_app(runtime: Runtime) -> TollwayApp:
    settings = runtime.settings
    portal = portal_tokens(runtime)
    webhooks = (
        StripeWebhooks(
            secret=settings.stripe_webhook_secret,
            store=runtime.invoices.store,
            clock=runtime.clock,
            notify=settings.notifications,
            payment_failed=(
                payment_failed_notice(runtime.notifications)
                if settings.notifications and runtime.notifications is not None
                else None
            ),
        )
        if settings.stripe_webhook_secret and runtime.invoices is not None
        else None
    )
    credits = runtime.credits
    if webhooks is not None and credits is not None:

        async def topup_paid(_: str) -> object:
            return await credits.settle_topups()  # a bought grant whose invoice Stripe collected: active now

        webhooks.on_paid = topup_paid
        webhooks.on_void = credits.restore_invoice  # a void in Stripe gives the consumed credits back too
    management = create_management_app(
        metering=runtime.metering,
        admin_token=runtime.settings.admin_token,
        auth_failures=runtime.auth_failures,
        identity=runtime.identity,
        invoice_preview=runtime.invoice_preview,
        catalog=runtime.catalog,
        invoices=runtime.invoices,
        stripe_webhooks=webhooks,
        notifications=runtime.notifications,
        billing_profile=BillingProfileInfo(
            seller_name=settings.seller_name,
            seller_email=settings.seller_email,
            seller_address=settings.seller_address,
            invoice_grace_s=settings.invoice_grace_s,
            invoice_due_days=settings.invoice_due_days,
            stripe=settings.stripe_secret_key is not None,
        ),
        invoice_documents=(
            _documents(settings, runtime.invoices, runtime.catalog) if runtime.invoices is not None else None
        ),
        api_docs=settings.api_docs,
        budgets=runtime.budgets,
        budget_status=runtime.budget_status,
        credits=runtime.credits,
        portal=portal,
        unit_grants=runtime.unit_grants,
    )
    return TollwayApp(
        gateway=runtime.gateway,
        management=management,
        metrics=runtime.metrics,
        ready=runtime.ready,
        storage=runtime.store.ping,
        after_change=runtime.after_change,
        startup=runtime.start,
        shutdown=runtime.stop,
        metrics_token=settings.metrics_token,
        unusable_models=runtime.policy.unusable_models if runtime.policy is not None else None,
        pages=build_dashboard(runtime, portal, _documents(settings, runtime.invoices, runtime.catalog))
        if runtime.invoices is not None and runtime.invoice_preview is not None
        else None,
    )


def app_from_env() -> TollwayApp:
    """ASGI factory for multi-worker serving: settings from TOLLWAY_*, config from TOLLWAY_CONFIG."""
    settings = Settings.from_env()
    config = load_config(settings.config, settings.env) if settings.config else TollwayConfig()
    return build_app(build_runtime(settings, config))


@dataclass
class Worker:
    """`tollway worker`: stores the usage that gateways on this host hand over through the journal,
    keeps meter rollups up to date, and runs the billing worker (period close, Stripe sync)."""

    store: SqlEventStore
    ingester: JournalIngester
    rollups: RollupWorker
    billing: BillingWorker | None = None
    stripe: StripeApi | None = None  # the sync step's HTTP session, closed on shutdown
    notifier: NotificationWorker | None = None  # webhook deliveries and event detection

    async def run(self, *, watch_stdin: bool = False) -> None:
        """Until SIGTERM or SIGINT; with `watch_stdin` (the storage process of `tollway serve`) also until
        standard input closes, which it does when the parent dies, however it died."""
        await asyncio.to_thread(upgrade, self.store.engine)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if watch_stdin:
            fd = sys.stdin.fileno()

            def readable() -> None:
                try:
                    closed = not os.read(fd, 4096)
                except OSError:
                    closed = True
                if closed:
                    loop.remove_reader(fd)
                    stop.set()

            loop.add_reader(fd, readable)
        self.rollups.start()
        if self.billing is not None:
            self.billing.start()
        if self.notifier is not None:
            self.notifier.start()
        try:
            await self.ingester.run(stop)
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop the background work and release the Stripe session and the database."""
        if self.billing is not None:
            await self.billing.stop()
        if self.notifier is not None:
            await self.notifier.stop()
        if self.stripe is not None:
            await self.stripe.close()
        await self.rollups.stop()
        await self.store.close()


def rollup_worker(store: SqlEventStore, clock: Clock, retention: timedelta | None) -> RollupWorker:
    """The rollup worker; with a retention it also deletes the raw events past it (metering/retention.py)."""
    return RollupWorker(store, retention=Retention(store, clock, retention) if retention is not None else None)


def build_worker(settings: Settings, clock: Clock | None = None, *, storage_only: bool = False) -> Worker:
    """`storage_only`: usage and rollups, no billing or notification worker (the storage process of
    `tollway serve`, whose parent runs those)."""
    holder = lease_holder()
    services = build_services(settings, clock)
    store = services.store
    ingester = JournalIngester(
        store,
        settings.journal_path,
        # every replica's directory under the journal root, each segment under a lease of this worker's
        claim=lambda directory: claim_segments(directory, limit=64, holder=holder, nested=True),
        batch_size=settings.flush_batch_size,
        interval_s=settings.flush_interval_s,
    )
    if storage_only:
        return Worker(
            store=store, ingester=ingester, rollups=rollup_worker(store, services.clock, services.metering.retention)
        )
    stripe = build_stripe_sync(services)
    return Worker(
        store=store,
        ingester=ingester,
        rollups=rollup_worker(store, services.clock, services.metering.retention),
        billing=build_billing_worker(
            services,
            stripe.run_once if stripe is not None else None,
            stripe.release if stripe is not None else None,
        ),
        stripe=stripe.api if stripe is not None else None,
        notifier=build_notification_worker(services),
    )
