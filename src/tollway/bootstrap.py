"""The composition root's entry point: a serving process's runtime and its ASGI app, and `tollway worker`, put
together from the builders in `tollway.wiring` (one module per area). Every object is built there or here, and
nowhere else; `tollway.runtime` runs them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tollway.adapters.journal.file import FileJournal, claim_segments, lease_holder
from tollway.adapters.stripe.webhooks import StripeWebhooks
from tollway.api.app import create_management_app
from tollway.api.billing_profiles import BillingProfileInfo
from tollway.asgi import TollwayApp
from tollway.auth_failures import AuthFailures
from tollway.billing.invoicing.documents import InvoiceDocuments
from tollway.changes import Changes
from tollway.clock import Clock
from tollway.config.loader import load_config
from tollway.config.schema import TollwayConfig, balanced_models
from tollway.dashboard.app import Dashboard
from tollway.dashboard.deps import DashboardDeps
from tollway.gateway.admission import GatewayAdmission
from tollway.gateway.app import Gateway
from tollway.gateway.balancing.health import HealthChecks
from tollway.gateway.balancing.policy import BalancingPolicy
from tollway.gateway.balancing.tokens import TokenCounting
from tollway.gateway.endpoints import ENDPOINTS
from tollway.gateway.flow import Flow
from tollway.gateway.hooks import Admission
from tollway.gateway.metrics import GatewayMetrics
from tollway.gateway.multiprocess_metrics import MultiprocessExposition
from tollway.gateway.refusals import NoticeRefusals
from tollway.gateway.relay import GatewayLimits
from tollway.identity.directory import KeyDirectory
from tollway.metering.backlog import BacklogWatch
from tollway.metering.spool import JournalIngester
from tollway.metrics import Counter
from tollway.portal.tokens import PortalTokens
from tollway.runtime.heap import settle_heap
from tollway.runtime.process import Runtime
from tollway.runtime.worker import Worker
from tollway.scrub import Scrubber
from tollway.settings import Settings
from tollway.wiring.billing import build_billing_worker, build_stripe_sync, documents
from tollway.wiring.dashboard import dashboard_secret, key_usage_endpoint, portal_tokens
from tollway.wiring.gateway import (
    change_feed,
    configured_paths,
    gateway_state,
    open_access_log,
    publish_keys,
    routing_share,
    secrets_of,
)
from tollway.wiring.metering import rollup_worker, store_metrics, usage_sink
from tollway.wiring.notifications import build_notification_worker, payment_failed_notice
from tollway.wiring.providers import build_provider
from tollway.wiring.services import build_services

if TYPE_CHECKING:  # OpenTelemetry is imported only when tracing is on
    from tollway.wiring.telemetry import Telemetry


def build_runtime(
    settings: Settings,
    config: TollwayConfig,
    clock: Clock | None = None,
    *,
    journal: FileJournal | None = None,
    telemetry: Telemetry | None = None,
) -> Runtime:
    """`journal`: the usage journal (default: a FileJournal in settings.journal_path; tests fill its disk).
    `telemetry`: OpenTelemetry's providers (default: from the OTEL_* variables when settings.tracing)."""
    services = build_services(settings, clock)
    stripe = build_stripe_sync(services)
    clock, store = services.clock, services.store
    journal = journal or FileJournal(settings.journal_path)
    providers = {
        p.name: build_provider(p, clock=clock, default_timeout_s=settings.upstream_timeout_s) for p in config.providers
    }
    metrics = GatewayMetrics()
    scrubber = Scrubber(secrets_of(settings, config))
    auth_failures = AuthFailures(metrics.auth_failures, limit=settings.auth_failure_limit)
    pipeline, backlog_age = usage_sink(settings, store, journal, metrics)
    state = gateway_state(config, providers)
    policy = BalancingPolicy(clock)
    policy.configure(balanced_models(config.models, config.providers), state.prices)
    metrics.add_source(policy.metrics.collect)
    share = routing_share(settings, policy, auth_failures, metrics)
    counters, keeper, spend = services.counters, services.spend_keeper, services.spend
    deliveries = Counter(
        "tollway_notification_deliveries_total",
        "Webhook delivery attempts by event type and outcome (success, retry, failed, gone).",
        ("event_type", "outcome"),
    )
    metrics.add_source(lambda: [deliveries.family()])
    notifier = build_notification_worker(services, lambda kind, outcome: deliveries.inc((kind, outcome)))
    if notifier is not None:
        metrics.add_gauge(
            "tollway_notification_outbox_oldest_pending_seconds",
            "Age of the oldest webhook delivery not yet done (0 when none), as of the last delivery round.",
            lambda: notifier.oldest_pending_age_s,
            mode="livemax",
        )
    admission: Admission = GatewayAdmission(
        spend, lambda: gateway.state, clock, default_max_tokens=settings.spend_default_max_tokens
    )
    if notifier is not None:  # a refusal at a limit: budget.exceeded, and look for threshold events now
        admission = NoticeRefusals(admission, notifier.refused)
    if telemetry is None and settings.tracing:
        from tollway.wiring.telemetry import from_env

        telemetry = from_env(settings.env)
    observer = telemetry.observer(lambda: runtime.config.providers) if telemetry is not None else None
    flow = Flow(
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
        policy=policy if observer is None else observer.policy(policy),
        admission=admission,
    )
    gateway = Gateway(
        flow,
        auth_failures=auth_failures,
        endpoints=(*ENDPOINTS, key_usage_endpoint(services, spend.budget_status)),
        observer=observer,
    )
    gateway.paths = configured_paths(config)
    store_metrics(store, metrics)
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
        mode="livemin",
    )
    changes = Changes([keys.refresh, keeper.refresh], change_feed(settings))
    published = MultiprocessExposition(Path(settings.metrics_dir), metrics) if settings.metrics_dir else None
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
        routing_share=share,
        backlog_watch=BacklogWatch(backlog_age, threshold_s=settings.usage_backlog_alert_s),
        shared_metrics=published,
        telemetry=telemetry,
    )
    services.notifications.on_secrets(runtime.set_webhook_secrets)
    return runtime


def build_app(runtime: Runtime) -> TollwayApp:
    settings = runtime.settings
    portal = portal_tokens(runtime.store.engine, runtime.clock, runtime.catalog.customers)
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
            documents(settings, runtime.invoices, runtime.catalog) if runtime.invoices is not None else None
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
        pages=_dashboard(runtime, portal, documents(settings, runtime.invoices, runtime.catalog))
        if runtime.invoices is not None and runtime.invoice_preview is not None
        else None,
    )


def _dashboard(runtime: Runtime, portal: PortalTokens, documents: InvoiceDocuments) -> Dashboard:
    """The operator dashboard and the customer portal over the runtime's services."""
    assert runtime.invoices is not None
    assert runtime.invoice_preview is not None
    return Dashboard(
        DashboardDeps(
            metering=runtime.metering,
            catalog=runtime.catalog,
            identity=runtime.identity,
            invoices=runtime.invoices,
            documents=documents,
            preview=runtime.invoice_preview,
            portal=portal,
            clock=runtime.clock,
            admin_token=runtime.settings.admin_token,
            secret=dashboard_secret(runtime.settings),
            refresh_keys=runtime.keys.refresh,
            budgets=runtime.budgets,
            budget_status=runtime.budget_status,
            resync=runtime.stripe_sync.reconcile if runtime.stripe_sync is not None else None,
            credits=runtime.credits,
            notifications=runtime.notifications,
        )
    )


def app_from_env() -> TollwayApp:
    """ASGI factory for multi-worker serving (`tollway serve --workers N`: uvicorn calls it in each worker):
    settings from TOLLWAY_*, config from TOLLWAY_CONFIG."""
    settings = Settings.from_env()
    config = load_config(settings.config, settings.env) if settings.config else TollwayConfig()
    app = build_app(build_runtime(settings, config))
    settle_heap()  # each worker's modules and app out of the garbage collector's walks (runtime/heap.py)
    return app


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
