"""The notification part of the composition root: the worker with its steps, the Stripe payment-failed notice,
and the config file's channels and rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from tollway.adapters.webhooks.sender import HttpWebhookSender, resolve
from tollway.api.notification_shapes import ApiShapes
from tollway.billing.catalog import Catalog
from tollway.billing.credit_accounts.service import CreditService
from tollway.billing.invoicing.model import Invoice
from tollway.billing.invoicing.ports import InvoiceStore
from tollway.clock import Clock
from tollway.config.notifications import NotificationsConfig
from tollway.notifications.apply import DesiredChannel, DesiredRule, apply_notifications
from tollway.notifications.balance import BalanceWorker
from tollway.notifications.budgets import BudgetEvents, BudgetReadings
from tollway.notifications.credits import CreditEvents
from tollway.notifications.delivery import Count, DeliveryWorker
from tollway.notifications.entitlements import CatalogEntitlements
from tollway.notifications.invoices import InvoiceEvents
from tollway.notifications.model import INVOICE_PAYMENT_FAILED
from tollway.notifications.service import NotificationService
from tollway.notifications.subscriptions import SubscriptionEvents
from tollway.notifications.worker import NotificationWorker, Step
from tollway.settings import Settings
from tollway.wiring.services import Services


def notification_worker(
    settings: Settings,
    clock: Clock,
    service: NotificationService,
    catalog: Catalog,
    invoices: InvoiceStore,
    count: Count | None = None,
    *,
    budgets: BudgetReadings | None = None,
    refresh_budgets: Callable[[], Awaitable[object]] | None = None,
    credits: CreditService | None = None,
) -> NotificationWorker | None:
    if not settings.notifications:
        return None
    shapes = ApiShapes()
    delivery = DeliveryWorker(
        service.store,
        HttpWebhookSender(allow_private=settings.webhook_allow_private),
        clock,
        resolve=resolve,
        allow_private=settings.webhook_allow_private,
        lease_s=settings.notification_lease_s,
        count=count,
    )
    steps: list[Step] = [
        BalanceWorker(service, CatalogEntitlements(catalog), shapes, clock).run_once,
        InvoiceEvents(invoices, service, shapes, clock).run_once,
        SubscriptionEvents(catalog.store, service, shapes, clock).run_once,
    ]
    if credits is not None:
        steps.append(CreditEvents(service, credits, catalog.customers, shapes, clock).run_once)
    on_refused = []
    if budgets is not None:
        budget_events = BudgetEvents(service, budgets, refresh=refresh_budgets)
        steps.append(budget_events.run_once)
        on_refused.append(budget_events.refused)
    return NotificationWorker(
        delivery,
        steps,
        service.store,
        clock,
        delivery_interval_s=settings.notification_interval_s,
        balance_interval_s=settings.balance_interval_s,
        on_refused=on_refused,
        rules_read=service.one_rules_read,
    )


def payment_failed_notice(notifications: NotificationService) -> Callable[[Invoice, str], Coroutine[Any, Any, object]]:
    """invoice.payment_failed from Stripe's webhook, once per Stripe event."""
    shapes = ApiShapes()

    async def notify(invoice: Invoice, event_id: str) -> object:
        return await notifications.emit(
            INVOICE_PAYMENT_FAILED,
            shapes.invoice(invoice),
            dedup_key=f"stripe:{event_id}",
            subject_key=invoice.customer_id,
        )

    return notify


async def apply_config_notifications(service: NotificationService, section: NotificationsConfig | None) -> list[str]:
    """The config file's channels and rules, created or updated by name; one line per change."""
    if section is None:
        return []
    return await apply_notifications(
        service,
        [DesiredChannel(c.name, c.url, c.signing_secret, dict(c.custom_headers), c.disabled) for c in section.channels],
        [
            DesiredRule(
                r.name,
                r.type,
                tuple(r.channels),
                tuple(r.features),
                tuple((t.value, t.type) for t in r.thresholds),
                r.disabled,
            )
            for r in section.rules
        ],
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
