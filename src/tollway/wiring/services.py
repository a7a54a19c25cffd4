"""The stores and use-case services over one database, built once: what `serve`, `worker` and every CLI command
use."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from tollway.adapters.memory.counters import MemoryCounterStore
from tollway.adapters.redis.counters import RedisCounterStore
from tollway.adapters.sql.budgets import SqlBudgetStore
from tollway.adapters.sql.catalog import SqlCatalogStore
from tollway.adapters.sql.credits import SqlCreditStore
from tollway.adapters.sql.engine import create_sql_engine
from tollway.adapters.sql.identity import SqlIdentityStore
from tollway.adapters.sql.invoices import SqlInvoiceStore
from tollway.adapters.sql.migrate import upgrade
from tollway.adapters.sql.notifications import SqlNotificationStore
from tollway.adapters.sql.store import SqlEventStore
from tollway.adapters.sql.unit_grants import SqlUnitGrantStore
from tollway.adapters.webhooks.sender import resolve
from tollway.billing.catalog import Catalog, CustomerService
from tollway.billing.catalog.unit_grant_service import UnitGrantService
from tollway.billing.credit_accounts.service import CreditService
from tollway.billing.credit_accounts.topups import TopUps
from tollway.billing.invoicing.model import Invoice
from tollway.billing.invoicing.ports import NOTIFY_CREATED, STRIPE_SYNC
from tollway.billing.invoicing.preview import InvoicePreview
from tollway.billing.invoicing.service import InvoiceService
from tollway.billing.invoicing.usage import MeteringUsageReader
from tollway.clock import Clock, SystemClock
from tollway.identity.service import IdentityService
from tollway.metering.retention import effective_retention
from tollway.metering.running_totals import RunningTotals
from tollway.metering.service import MeteringService
from tollway.notifications.service import NotificationService
from tollway.settings import Settings
from tollway.spend.admission import SpendAdmission
from tollway.spend.budget_usage import BudgetUsage
from tollway.spend.budgets import Budget, BudgetStatus
from tollway.spend.budgets_service import BudgetService
from tollway.spend.keeper import RulesKeeper
from tollway.spend.ports import CounterStore
from tollway.spend.usage import MeteredUsage
from tollway.wiring.catalog import build_catalog, build_unit_grants


@dataclass
class Services:
    """The stores and use-case services over one database: what `serve`, `worker` and every CLI command use."""

    settings: Settings
    clock: Clock
    store: SqlEventStore
    metering: MeteringService
    identity: IdentityService
    catalog: Catalog
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
    customers = CustomerService(catalog_store, clock)  # metering's CustomerResolver, so built before metering
    metering = MeteringService(store, clock, customers=customers, retention=retention)
    identity = IdentityService(SqlIdentityStore(store.engine), clock)
    unit_grant_store = SqlUnitGrantStore(store.engine)
    catalog = build_catalog(catalog_store, metering, clock, customers=customers, unit_grants=unit_grant_store)
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
    invoice_preview = InvoicePreview(catalog.contexts, MeteringUsageReader(metering), clock, credits=credit_store)
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
    unit_grants = build_unit_grants(catalog, unit_grant_store)
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
