"""The dashboard's and the portal's part of the composition root: portal tokens over the database, the session
secret, and the gateway's GET /v1/usage (the pages themselves are put together from the runtime by
`tollway.bootstrap`)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import Engine

from tollway.adapters.sql.portal import SqlPortalTokenStore
from tollway.billing.catalog.customer_service import CustomerService
from tollway.clock import Clock
from tollway.dashboard.key_usage import KeyUsageReport
from tollway.dashboard.reports import BudgetStatusOf
from tollway.gateway.endpoint import HandlerEndpoint
from tollway.gateway.endpoints.usage import usage_endpoint
from tollway.portal.tokens import PortalTokens
from tollway.settings import Settings
from tollway.wiring.services import Services


class CatalogCustomers:
    """Portal tokens name a customer by id or key; they keep its key."""

    def __init__(self, customers: CustomerService) -> None:
        self._customers = customers

    async def customer_key_of(self, id_or_key: str) -> str:
        return (await self._customers.customer(id_or_key)).key


def portal_tokens(engine: Engine, clock: Clock, customers: CustomerService) -> PortalTokens:
    """Portal tokens over the database."""
    return PortalTokens(SqlPortalTokenStore(engine), clock, CatalogCustomers(customers))


def dashboard_secret(settings: Settings) -> bytes:
    """What signs the dashboard's sessions: TOLLWAY_DASHBOARD_SECRET's digest; without it a random secret for this
    process (sessions end when it stops)."""
    if settings.dashboard_secret:
        return hashlib.sha256(settings.dashboard_secret.encode()).digest()
    return secrets.token_bytes(32)


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
