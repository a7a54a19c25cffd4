"""The customer portal: /portal?token=… (a portal token, the link an operator hands out) becomes a cookie and the
token leaves the address bar; the page shows that customer's (or subject's) usage, current invoice preview,
entitlements, budgets and past invoices, and nothing of anyone else.

The cookie is HttpOnly and SameSite=Lax (not Strict: the link is opened from a mail or another site, and a Strict
cookie set on that navigation would not come back on its own redirect), limited to /portal, and lasts as long as
the token. The portal has no form that changes anything but signing out."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollway.dashboard import fmt
from tollway.dashboard.charts import series_chart
from tollway.dashboard.pages_billing import pdf_response
from tollway.dashboard.reports import UsageTotals, budget_bars, credit_balance, entitlement_bars, token_usage
from tollway.dashboard.security import PORTAL_COOKIE
from tollway.dashboard.web import Web
from tollway.errors import DomainError, NotFoundError, UnauthenticatedError
from tollway.metering.aggregation import MeterQuery
from tollway.portal.tokens import PortalToken

SHOWN = ("issued", "paid", "uncollectible", "void")  # drafts are the operator's


def routes(web: Web) -> list[BaseRoute]:
    deps = web.deps

    def refused(message: str, status: int = 401) -> Response:
        response = web.render("portal_signin.html", http_status=status, message=message)
        response.delete_cookie(PORTAL_COOKIE, path="/portal")
        return response

    async def token_of(request: Request) -> PortalToken:
        presented = request.cookies.get(PORTAL_COOKIE) or ""
        return await deps.portal.authenticate(presented)

    async def portal(request: Request) -> Response:
        given = request.query_params.get("token")
        if given is not None:
            try:
                token = await deps.portal.authenticate(given)
            except UnauthenticatedError:
                return refused("This portal link is invalid or has expired. Ask your provider for a new one.")
            response = web.redirect("/portal")  # the token leaves the address bar (and the history)
            lifetime = max(1, int((token.expires_at - deps.clock.now()).total_seconds()))
            response.set_cookie(
                PORTAL_COOKIE,
                given,
                max_age=lifetime,
                path="/portal",
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
            )
            return response
        try:
            token = await token_of(request)
        except UnauthenticatedError:
            return refused("Open the portal with the link your provider gave you.")
        try:
            return web.render("portal.html", **await portal_context(request, token))
        except DomainError as exc:
            return web.error_page(exc, signed_in=False)

    async def portal_context(request: Request, token: PortalToken) -> dict[str, Any]:
        now = deps.clock.now()
        tz = fmt.zone(request.query_params.get("tz"))
        rng = fmt.time_range(
            request.query_params.get("range") or "30d", request.query_params.get("granularity"), tz, now
        )
        query = MeterQuery(start=rng.start, end=rng.end, window_size=rng.window, window_tz=tz)
        context: dict[str, Any] = {"tz": tz, "tz_name": fmt.zone_name(tz), "rng": rng, "token": token}
        if token.customer_key is None:
            subject = token.subject or ""
            usage: UsageTotals = await token_usage(deps.metering, replace(query, subjects=(subject,)))
            budgets = await budget_bars(deps.budgets, deps.budget_status, consumers=[subject])
            return {
                **context,
                "title": subject,
                "usage": usage,
                "chart": series_chart(usage.rows, rng, "type"),
                "budgets": budgets,
                "entitlements": [],
                "invoices": [],
                "preview": None,
                "customer": None,
                "credits": None,
            }
        customer = await deps.catalog.customers.customer(token.customer_key)
        usage, entitlements, budgets, invoices, credits = await asyncio.gather(
            token_usage(deps.metering, query, customer=customer.key),
            entitlement_bars(deps.catalog, customer, now),
            budget_bars(deps.budgets, deps.budget_status, customers=[customer.key], consumers=customer.subjects),
            deps.invoices.list(customer=customer.id),
            credit_balance(deps.credits, customer),
        )
        try:
            preview = await deps.preview.preview(customer.key)
        except DomainError:
            preview = None
        return {
            **context,
            "title": customer.name,
            "customer": customer,
            "usage": usage,
            "chart": series_chart(usage.rows, rng, "type"),
            "entitlements": entitlements,
            "budgets": budgets,
            "invoices": sorted((i for i in invoices if i.status in SHOWN), key=lambda i: i.period_start, reverse=True),
            "preview": preview,
            "credits": credits,
        }

    async def portal_pdf(request: Request) -> Response:
        try:
            token = await token_of(request)
        except UnauthenticatedError:
            return refused("Open the portal with the link your provider gave you.")
        invoice_id = request.path_params["invoice_id"]
        try:
            invoice = await deps.invoices.get(invoice_id)
            customer = await deps.catalog.customers.customer(token.customer_key) if token.customer_key else None
            if customer is None or invoice.customer_id != customer.id or invoice.status not in SHOWN:
                raise NotFoundError(f"invoice {invoice_id!r} not found")  # another customer's: as if none
            return await pdf_response(web, invoice_id)
        except DomainError as exc:
            return web.error_page(exc, signed_in=False)

    async def signout(request: Request) -> Response:
        response = web.redirect("/portal")
        response.delete_cookie(PORTAL_COOKIE, path="/portal")
        return response

    return [
        Route("/portal", portal, methods=["GET"]),
        Route("/portal/invoices/{invoice_id}/pdf", portal_pdf, methods=["GET"]),
        Route("/portal/signout", signout, methods=["POST"]),
    ]
