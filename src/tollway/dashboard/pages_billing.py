"""Customers (search, a customer's page, portal links), Invoices (filters, a document, PDF, actions) and Plans."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from tollway.billing.invoicing.lifecycle import STATUSES
from tollway.billing.invoicing.model import Invoice
from tollway.dashboard import fmt
from tollway.dashboard.charts import series_chart
from tollway.dashboard.reports import (
    active_subscription,
    budget_bars,
    credit_balance,
    entitlement_bars,
    recent_notifications,
    token_usage,
)
from tollway.dashboard.security import Session
from tollway.dashboard.web import Web, form_of
from tollway.errors import DomainError, NotFoundError, ValidationError
from tollway.metering.aggregation import MeterQuery

PAGE_SIZE = 25
ACTIONS = ("issue", "void", "uncollectible", "resync")


def page_of(items: list[Any], raw: str | None) -> tuple[list[Any], int, int]:
    """The items of one page (1-based), the page and the number of pages."""
    pages = max(1, -(-len(items) // PAGE_SIZE))
    page = int(raw) if raw and raw.isdigit() else 1
    page = min(max(page, 1), pages)
    return items[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], page, pages


def matches(text: str, *fields: str | None) -> bool:
    wanted = text.casefold()
    return any(wanted in (value or "").casefold() for value in fields)


def routes(web: Web) -> list[BaseRoute]:
    deps = web.deps

    async def customers(request: Request, session: Session) -> Response:
        search = (request.query_params.get("q") or "").strip()[:100]
        everyone = await deps.catalog.customers.customers()
        found = [c for c in everyone if not search or matches(search, c.name, c.key, c.email, *c.subjects)]
        found.sort(key=lambda c: c.name.casefold())
        shown, page, pages = page_of(found, request.query_params.get("page"))
        now = deps.clock.now()
        subscriptions = await deps.catalog.subscriptions.subscriptions()
        plan_of = {}
        for subscription in subscriptions:
            if active_subscription([subscription], now) is not None:
                plan_of[subscription.customer_id] = f"{subscription.plan_key} v{subscription.plan_version}"
        return web.page(
            request,
            session,
            "customers.html",
            "customers",
            customers=shown,
            plan_of=plan_of,
            search=search,
            page=page,
            pages=pages,
            total=len(found),
            everyone=len(everyone),
        )

    async def customer_context(request: Request, key: str) -> dict[str, Any]:
        customer = await deps.catalog.customers.customer(key)
        now = deps.clock.now()
        tz = fmt.zone(request.query_params.get("tz"))
        rng = fmt.time_range(
            request.query_params.get("range") or "30d", request.query_params.get("granularity"), tz, now
        )
        query = MeterQuery(start=rng.start, end=rng.end, window_size=rng.window, window_tz=tz)
        subscriptions = await deps.catalog.subscriptions.subscriptions(customer=customer.key)
        current = active_subscription(subscriptions, now)
        plan = await deps.catalog.plans.plan(current.plan_id) if current is not None else None
        usage, entitlements, budgets, invoices, credits, notices = await asyncio.gather(
            token_usage(deps.metering, query, customer=customer.key),
            entitlement_bars(deps.catalog, customer, now),
            budget_bars(deps.budgets, deps.budget_status, customers=[customer.key], consumers=customer.subjects),
            deps.invoices.list(customer=customer.id),
            credit_balance(deps.credits, customer),
            recent_notifications(deps.notifications, customer),
        )
        preview: Invoice | None = None
        if current is not None:
            try:
                preview = await deps.preview.preview(customer.key)
            except DomainError:
                preview = None
        return {
            "customer": customer,
            "subscription": current,
            "subscriptions": subscriptions,
            "plan": plan,
            "usage": usage,
            "chart": series_chart(usage.rows, rng, "type"),
            "rng": rng,
            "entitlements": entitlements,
            "budgets": budgets,
            "budgets_available": deps.budgets is not None,
            "invoices": sorted(invoices, key=lambda i: i.period_start, reverse=True),
            "preview": preview,
            "credits": credits,
            "credits_available": deps.credits is not None,
            "notices": notices,
        }

    async def customer_page(request: Request, session: Session) -> Response:
        context = await customer_context(request, request.path_params["key"])
        return web.page(request, session, "customer.html", "customers", **context)

    async def portal_link(request: Request, session: Session) -> Response:
        context = await customer_context(request, request.path_params["key"])
        days = form_of(request).get("days") or "30"
        if not days.isdigit() or not 1 <= int(days) <= 366:
            raise ValidationError("a portal link lasts 1 to 366 days", field="days")
        created = await deps.portal.create(
            customer=context["customer"].key, expires_at=deps.clock.now() + timedelta(days=int(days))
        )
        link = f"{request.url.scheme}://{request.headers.get('host', 'localhost')}/portal?token={created.plain}"
        return web.page(request, session, "customer.html", "customers", portal_link=link, **context)

    async def invoices(request: Request, session: Session) -> Response:
        params = request.query_params
        status = params.get("status") or ""
        if status and status not in STATUSES:
            raise ValidationError(f"status is one of {', '.join(STATUSES)}", field="status")
        period = (params.get("period") or "").strip()  # YYYY-MM: invoices whose period starts in that month
        found = await deps.invoices.list(status=status or None)
        if period:
            found = [i for i in found if f"{i.period_start:%Y-%m}" == period]
        found.sort(key=lambda i: (i.period_start, i.created_at or i.period_start), reverse=True)
        shown, page, pages = page_of(found, params.get("page"))
        names = {c.id: c.name for c in await deps.catalog.customers.customers(include_deleted=True)}
        return web.page(
            request,
            session,
            "invoices.html",
            "invoices",
            invoices=shown,
            names=names,
            status=status,
            period=period,
            statuses=STATUSES,
            page=page,
            pages=pages,
            total=len(found),
        )

    async def invoice_page(request: Request, session: Session) -> Response:
        invoice = await deps.invoices.get(request.path_params["invoice_id"])
        customer = await deps.catalog.customers.customer(invoice.customer_id)
        return web.page(
            request,
            session,
            "invoice.html",
            "invoices",
            invoice=invoice,
            customer=customer,
            can_resync=deps.resync is not None,
        )

    async def invoice_document(request: Request, session: Session) -> Response:
        html = await deps.documents.html(request.path_params["invoice_id"])
        headers = {
            # the document's own policy, framed by the dashboard's invoice page only
            "Content-Security-Policy": deps.documents.content_security_policy.replace(
                "frame-ancestors 'none'", "frame-ancestors 'self'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }
        return HTMLResponse(html, headers=headers)

    async def invoice_pdf(request: Request, session: Session) -> Response:
        return await pdf_response(web, request.path_params["invoice_id"])

    async def invoice_action(request: Request, session: Session) -> Response:
        invoice_id, action = request.path_params["invoice_id"], request.path_params["action"]
        if action not in ACTIONS:
            raise NotFoundError(f"no action {action!r}")
        if action == "issue":
            await deps.invoices.issue(invoice_id)
        elif action == "void":
            await deps.invoices.void(invoice_id)
        elif action == "uncollectible":
            await deps.invoices.mark_uncollectible(invoice_id)
        else:
            if deps.resync is None:
                raise ValidationError("Stripe is not configured (TOLLWAY_STRIPE_SECRET_KEY)", field="action")
            await deps.resync(invoice_id)
        return web.redirect(f"/dashboard/invoices/{invoice_id}?done={action}")

    async def plans(request: Request, session: Session) -> Response:
        everything, features, subscriptions, customers = await asyncio.gather(
            deps.catalog.plans.plans(),
            deps.catalog.features.features(),
            deps.catalog.subscriptions.subscriptions(),
            deps.catalog.customers.customers(),
        )
        now = deps.clock.now()
        names = {c.id: c for c in customers}
        on_plan: dict[str, list[Any]] = {}
        for subscription in subscriptions:
            if active_subscription([subscription], now) is not None and subscription.customer_id in names:
                on_plan.setdefault(subscription.plan_id, []).append(names[subscription.customer_id])
        ordered = sorted(everything, key=lambda p: (p.key, -p.version))
        return web.page(request, session, "plans.html", "plans", plans=ordered, features=features, on_plan=on_plan)

    async def publish(request: Request, session: Session) -> Response:
        plan = await deps.catalog.plans.publish_plan(request.path_params["plan_id"])
        return web.redirect(f"/dashboard/plans?done=published#plan-{plan.id}")

    return [
        Route("/dashboard/customers", web.admin(customers), methods=["GET"]),
        Route("/dashboard/customers/{key}", web.admin(customer_page), methods=["GET"]),
        Route("/dashboard/customers/{key}/portal-link", web.admin(portal_link), methods=["POST"]),
        Route("/dashboard/invoices", web.admin(invoices), methods=["GET"]),
        Route("/dashboard/invoices/{invoice_id}", web.admin(invoice_page), methods=["GET"]),
        Route("/dashboard/invoices/{invoice_id}/document", web.admin(invoice_document), methods=["GET"]),
        Route("/dashboard/invoices/{invoice_id}/pdf", web.admin(invoice_pdf), methods=["GET"]),
        Route("/dashboard/invoices/{invoice_id}/{action}", web.admin(invoice_action), methods=["POST"]),
        Route("/dashboard/plans", web.admin(plans), methods=["GET"]),
        Route("/dashboard/plans/{plan_id}/publish", web.admin(publish), methods=["POST"]),
    ]


async def pdf_response(web: Web, invoice_id: str) -> Response:
    documents = web.deps.documents
    document = await documents.view(invoice_id)
    filename = f"invoice-{document.number if document.number != 'Draft' else invoice_id}.pdf"
    return Response(
        await documents.pdf(invoice_id),
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
