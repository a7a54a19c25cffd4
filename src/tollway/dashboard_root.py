"""The dashboard's and the portal's part of the composition root: portal tokens over the database, the pages'
dependencies from the runtime (budgets where spend control runs, resync where Stripe is configured)."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from tollway.adapters.sql.portal import SqlPortalTokenStore
from tollway.billing.catalog.customer_service import CustomerService
from tollway.dashboard.app import Dashboard
from tollway.dashboard.deps import DashboardDeps
from tollway.dashboard.key_usage import KeyUsageReport
from tollway.dashboard.reports import BudgetStatusOf
from tollway.gateway.endpoint import HandlerEndpoint
from tollway.gateway.endpoints.usage import usage_endpoint
from tollway.portal.tokens import PortalTokens

if TYPE_CHECKING:
    from tollway.billing.invoicing.documents import InvoiceDocuments
    from tollway.runtime.process import Runtime
    from tollway.wiring.services import Services


class CatalogCustomers:
    """Portal tokens name a customer by id or key; they keep its key."""

    def __init__(self, customers: CustomerService) -> None:
        self._customers = customers

    async def customer_key_of(self, id_or_key: str) -> str:
        return (await self._customers.customer(id_or_key)).key


def portal_tokens(runtime: Runtime) -> PortalTokens:
    store = SqlPortalTokenStore(runtime.store.engine)
    return PortalTokens(store, runtime.clock, CatalogCustomers(runtime.catalog.customers))


def build_dashboard(runtime: Runtime, portal: PortalTokens, documents: InvoiceDocuments) -> Dashboard:
    settings = runtime.settings
    assert runtime.invoices is not None
    assert runtime.invoice_preview is not None
    # Without TOLLWAY_DASHBOARD_SECRET: a random secret for this process (sessions end when it stops).
    secret = (
        hashlib.sha256(settings.dashboard_secret.encode()).digest()
        if settings.dashboard_secret
        else secrets.token_bytes(32)
    )
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
            admin_token=settings.admin_token,
            secret=secret,
            refresh_keys=runtime.keys.refresh,
            budgets=runtime.budgets,
            budget_status=runtime.budget_status,
            resync=runtime.stripe_sync.reconcile if runtime.stripe_sync is not None else None,
            credits=runtime.credits,
            notifications=runtime.notifications,
        )
    )


def key_usage_endpoint(services: Services, budget_status: BudgetStatusOf | None) -> HandlerEndpoint:
    """The gateway's GET /v1/usage over the services (a key holder's own usage and budgets)."""
    report = KeyUsageReport(
        services.metering,
        services.identity,
        services.catalog.customers,
        services.clock,
        budgets=services.budgets,
        budget_status=budget_status,
    )
    return usage_endpoint(report)
