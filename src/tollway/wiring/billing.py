"""Billing's part of the composition root: invoice documents, the Stripe sync step, the billing worker (period
close, Stripe sync, credits)."""

from __future__ import annotations

from datetime import timedelta

from tollway.adapters.invoice_documents.renderer import InvoiceRenderer
from tollway.adapters.stripe.client import StripeApi
from tollway.adapters.stripe.sync import StripeSync
from tollway.billing.catalog import Catalog
from tollway.billing.invoicing.close import CloseSettings, PeriodCloser
from tollway.billing.invoicing.document import Seller
from tollway.billing.invoicing.documents import InvoiceDocuments
from tollway.billing.invoicing.service import InvoiceService
from tollway.billing.invoicing.usage import MeteringUsageReader
from tollway.billing.invoicing.worker import BillingWorker, SyncStep
from tollway.settings import Settings
from tollway.wiring.services import Services


def invoice_documents(services: Services) -> InvoiceDocuments:
    """Invoices as HTML and PDF documents, with the seller block from the TOLLWAY_SELLER_* settings."""
    return documents(services.settings, services.invoices, services.catalog)


def documents(settings: Settings, invoices: InvoiceService, catalog: Catalog) -> InvoiceDocuments:
    seller = Seller(settings.seller_name, settings.seller_address, settings.seller_email)
    return InvoiceDocuments(
        invoices=invoices.store, customers=catalog.customers, seller=seller, renderer=InvoiceRenderer()
    )


def build_stripe_sync(services: Services) -> StripeSync | None:
    """The Stripe sync step of the billing worker; None (nothing is sent to Stripe) without a secret key."""
    settings = services.settings
    if not settings.stripe_secret_key:
        return None
    api = StripeApi(settings.stripe_secret_key, api_base=settings.stripe_api_base)
    return StripeSync(
        store=services.invoices.store, customers=services.catalog.customers, api=api, clock=services.clock
    )


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
