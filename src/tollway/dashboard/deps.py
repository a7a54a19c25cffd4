"""What the dashboard and the portal are built from (the composition root fills it in)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tollway.billing.catalog import Catalog
from tollway.billing.credit_accounts.service import CreditService
from tollway.billing.invoicing.documents import InvoiceDocuments
from tollway.billing.invoicing.model import Invoice
from tollway.billing.invoicing.preview import InvoicePreview
from tollway.billing.invoicing.service import InvoiceService
from tollway.clock import Clock
from tollway.dashboard.reports import BudgetStatusOf
from tollway.identity.service import IdentityService
from tollway.metering.service import MeteringService
from tollway.notifications.service import NotificationService
from tollway.portal.tokens import PortalTokens
from tollway.spend.budgets_service import BudgetService


@dataclass
class DashboardDeps:
    metering: MeteringService
    catalog: Catalog
    identity: IdentityService
    invoices: InvoiceService
    documents: InvoiceDocuments
    preview: InvoicePreview
    portal: PortalTokens
    clock: Clock
    admin_token: str | None
    secret: bytes  # signs session cookies and CSRF tokens
    refresh_keys: Callable[[], Awaitable[object]] | None = None  # a revoked key is refused from the next request
    budgets: BudgetService | None = None
    budget_status: BudgetStatusOf | None = None
    resync: Callable[[str], Awaitable[Invoice]] | None = None  # the invoice pushed to Stripe again; None: no Stripe
    credits: CreditService | None = None  # money credits (prepaid balance) where the process has them
    notifications: NotificationService | None = None  # the webhook events sent about a customer
