"""The management application: FastAPI, admin-authenticated, OpenAPI at /openapi.json (TOLLWAY_API_DOCS)."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from tollway import __version__
from tollway.api.auth import AdminGate, admin_guard, as_dependency
from tollway.api.billing_profiles import BillingProfileInfo, billing_profiles_router
from tollway.api.body_limit import MAX_MANAGEMENT_BODY_BYTES, BodyLimit
from tollway.api.budgets import Status as BudgetStatusReader
from tollway.api.budgets import budgets_router
from tollway.api.consumers import consumers_router
from tollway.api.credits import credits_router, recharge_router
from tollway.api.customers import customers_router
from tollway.api.docs_pages import ASSETS_URL, OPENAPI_URL, install_docs_pages
from tollway.api.entitlement_list import entitlement_list_router
from tollway.api.entitlements import entitlements_router
from tollway.api.errors import install_error_handlers
from tollway.api.events import IngestRoute, events_router, v3_events_router
from tollway.api.features import features_router
from tollway.api.invoice_documents import invoice_documents_router
from tollway.api.invoices import invoices_router
from tollway.api.invoices_preview import invoices_preview_router
from tollway.api.meter_values import meter_values_router
from tollway.api.meters import meters_router
from tollway.api.meters_v3 import meters_v3_router
from tollway.api.notifications import notifications_router
from tollway.api.openapi import install_openapi
from tollway.api.params import refuse_nul
from tollway.api.plans import plans_router
from tollway.api.portal import PORTAL_QUERY_PREFIX, portal_admin_router, portal_query_router
from tollway.api.rate_limits import rate_limits_router
from tollway.api.stripe_webhook import stripe_webhook_router
from tollway.api.subjects import subjects_router
from tollway.api.subscriptions import subscriptions_router
from tollway.api.unit_grants import unit_grants_router
from tollway.auth_failures import AuthFailures
from tollway.billing.catalog import Catalog
from tollway.billing.catalog.unit_grant_service import UnitGrantService
from tollway.billing.credit_accounts.service import CreditService
from tollway.billing.invoicing.collection import PaymentWebhooks
from tollway.billing.invoicing.documents import InvoiceDocuments
from tollway.billing.invoicing.preview import InvoicePreview
from tollway.billing.invoicing.service import InvoiceService
from tollway.identity.service import IdentityService
from tollway.metering.service import MeteringService
from tollway.notifications.service import NotificationService
from tollway.portal.tokens import PortalTokens
from tollway.spend.budgets_service import BudgetService


def create_management_app(
    *,
    metering: MeteringService,
    admin_token: str | None,
    identity: IdentityService | None = None,
    invoice_preview: InvoicePreview | None = None,
    catalog: Catalog | None = None,
    stripe_webhooks: PaymentWebhooks | None = None,
    invoice_documents: InvoiceDocuments | None = None,
    invoices: InvoiceService | None = None,
    max_body_bytes: int = MAX_MANAGEMENT_BODY_BYTES,
    auth_failures: AuthFailures | None = None,
    api_docs: str = "admin",
    notifications: NotificationService | None = None,
    budgets: BudgetService | None = None,
    portal: PortalTokens | None = None,
    budget_status: BudgetStatusReader | None = None,
    credits: CreditService | None = None,
    unit_grants: UnitGrantService | None = None,
    billing_profile: BillingProfileInfo | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Tollway management API",
        version=__version__,
        description=(
            "Meters, usage queries and billing. Authenticate with `Authorization: Bearer $TOLLWAY_ADMIN_TOKEN`."
        ),
        docs_url=None,  # these three are served by install_docs_pages (local assets, TOLLWAY_API_DOCS)
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,  # its redirect's Location is built from the Host header: a wrong slash is a 404
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes)  # chunked bodies too: FastAPI sets no limit
    # POST /api/v1/events (and OpenMeter's v3 path) answered without the routing machinery: the hot path
    app.add_middleware(IngestRoute, service=metering, max_body_bytes=max_body_bytes)
    check = admin_guard(admin_token, auth_failures)
    # Outermost (added last): the token is checked before BodyLimit buffers a body. Public: the Stripe webhook
    # (its signature authenticates it), the docs' static assets, and the docs pages with TOLLWAY_API_DOCS=open.
    public_pages = (OPENAPI_URL, "/docs", "/redoc") if api_docs == "open" else ()
    app.add_middleware(
        AdminGate,
        check=check,
        # the portal's meter query takes a portal token (checked by its router), not the admin token
        public=lambda path: (
            path.startswith(("/api/v1/stripe/", ASSETS_URL + "/", PORTAL_QUERY_PREFIX)) or path in public_pages
        ),
    )
    guard = Depends(as_dependency(check))
    install_docs_pages(app, access=api_docs, guard=guard)
    checked = [guard, Depends(refuse_nul)]  # the admin token first: a stranger learns nothing from a 400
    app.include_router(events_router(metering), dependencies=checked)
    app.include_router(v3_events_router(metering), dependencies=checked)
    app.include_router(meters_router(metering), dependencies=checked)
    app.include_router(meter_values_router(metering), dependencies=checked)
    app.include_router(meters_v3_router(metering), dependencies=checked)
    app.include_router(subjects_router(metering), dependencies=checked)
    if identity is not None:
        app.include_router(consumers_router(identity), dependencies=checked)
    if catalog is not None:
        for router in (
            features_router(catalog.features),
            plans_router(catalog.plans),
            customers_router(catalog.customers, catalog.subscriptions, catalog.clock),
            subscriptions_router(catalog.subscriptions, catalog.clock),
            entitlements_router(catalog.entitlements),
            entitlement_list_router(catalog.entitlements),
        ):
            app.include_router(router, dependencies=checked)
    if notifications is not None:
        features = catalog.features if catalog is not None else None
        app.include_router(notifications_router(notifications, features), dependencies=checked)
    if budgets is not None and budget_status is not None:
        app.include_router(budgets_router(budgets, budget_status), dependencies=checked)
        app.include_router(rate_limits_router(budgets.rate_limits), dependencies=checked)
    if credits is not None:
        app.include_router(credits_router(credits), dependencies=checked)
        app.include_router(recharge_router(credits), dependencies=checked)
    if unit_grants is not None:
        app.include_router(unit_grants_router(unit_grants), dependencies=checked)
    if invoice_preview is not None:  # before the invoices router: /invoices/preview is not an invoice id
        app.include_router(invoices_preview_router(invoice_preview), dependencies=checked)
    if invoice_documents is not None:  # before the invoices router: /invoices/{id} would take "ID.pdf" for an id
        app.include_router(invoice_documents_router(invoice_documents), dependencies=checked)
    if invoices is not None:
        app.include_router(invoices_router(invoices), dependencies=checked)
        app.include_router(billing_profiles_router(billing_profile or BillingProfileInfo()), dependencies=checked)
    if portal is not None:
        app.include_router(portal_admin_router(portal), dependencies=checked)
        app.include_router(portal_query_router(portal, metering), dependencies=[Depends(refuse_nul)])
    app.include_router(stripe_webhook_router(stripe_webhooks))  # no admin token: Stripe-Signature authenticates
    install_openapi(app)
    return app
