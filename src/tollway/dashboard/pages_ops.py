"""Overview, Meters (query explorer, CSV) and Live (newest requests, refreshed in place)."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollway.dashboard import fmt
from tollway.dashboard.charts import series_chart, top
from tollway.dashboard.reports import totals_of
from tollway.dashboard.security import Session
from tollway.dashboard.web import SECURITY_HEADERS, Web
from tollway.errors import ValidationError
from tollway.metering.aggregation import MeterQuery, QueryRow
from tollway.metering.events import Event, format_time
from tollway.metering.llm import REQUEST_EVENT
from tollway.money import decimal_text, from_minor_units

LIVE_ROWS = 50
BILLED = ("issued", "paid", "uncollectible")
MAX_TABLE_ROWS = 500


@dataclass(frozen=True)
class LiveRow:
    time: Any
    subject: str
    model: str
    input: int
    output: int
    cached: int
    cost: Decimal | None
    status: int
    streamed: bool
    partial: bool
    duration_ms: int | None = None


def live_row(event: Event) -> LiveRow:
    data = event.data

    def integer(name: str) -> int:
        value = data.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    cost = None
    if isinstance(data.get("cost_usd"), str):
        try:
            cost = Decimal(data["cost_usd"])
        except InvalidOperation:
            cost = None
    status = data.get("status_code")
    return LiveRow(
        time=event.time,
        subject=event.subject,
        model=str(data.get("model") or "—"),
        input=integer("input_tokens"),
        output=integer("output_tokens"),
        cached=integer("cache_read_tokens") + integer("cache_write_tokens"),
        cost=cost,
        status=status if isinstance(status, int) else 0,
        streamed=bool(data.get("streamed")),
        partial=bool(data.get("partial")),
        duration_ms=integer("duration_ms") if "duration_ms" in data else None,
    )


def is_error(status: str | None) -> bool:
    return bool(status) and (status or "").isdigit() and int(status or "0") >= 400


def routes(web: Web) -> list[BaseRoute]:
    deps = web.deps

    async def overview(request: Request, session: Session) -> Response:
        params = request.query_params
        tz = fmt.zone(params.get("tz"))
        rng = fmt.time_range(params.get("range"), params.get("granularity"), tz, deps.clock.now())
        windows = MeterQuery(start=rng.start, end=rng.end, window_size=rng.window, window_tz=tz)
        whole = MeterQuery(start=rng.start, end=rng.end)
        # one read of the token rollups serves the charts, the totals and the top customers
        token_rows, request_rows, cost_rows, customers, invoices = await asyncio.gather(
            deps.metering.query("llm_tokens", replace(windows, group_by=("subject", "type", "model"))),
            deps.metering.query("llm_requests", replace(windows, group_by=("status_code",))),
            deps.metering.query("llm_cost", replace(whole, group_by=("model",))),
            deps.catalog.customers.customers(),
            deps.invoices.store.list_invoices(period_end_from=rng.start),  # not every invoice ever made
        )
        subject_rows = token_rows
        totals = totals_of(token_rows)
        requests = sum((r.value for r in request_rows), Decimal(0))
        errors = sum((r.value for r in request_rows if is_error(r.group_by.get("status_code"))), Decimal(0))
        cost_by_model: dict[str, Decimal] = {}
        for row in cost_rows:
            name = row.group_by.get("model") or "—"
            cost_by_model[name] = cost_by_model.get(name, Decimal(0)) + row.value
        cost = sum(cost_by_model.values(), Decimal(0))
        revenue: dict[str, int] = {}
        for invoice in invoices:  # billed for periods that end in the range
            if invoice.status in BILLED and invoice.period_end < rng.end:
                revenue[invoice.currency] = revenue.get(invoice.currency, 0) + invoice.total_minor
        margin = from_minor_units(revenue["USD"], "USD") - cost if "USD" in revenue else None
        owner = {subject: c for c in customers for subject in c.subjects}
        by_customer: dict[str, Decimal] = {}
        names: dict[str, tuple[str, str | None]] = {}
        for row in subject_rows:
            subject = row.subject or "—"
            customer = owner.get(subject)
            key = customer.key if customer is not None else f"subject:{subject}"
            names[key] = (customer.name, customer.key) if customer else (f"{subject} (no customer)", None)
            by_customer[key] = by_customer.get(key, Decimal(0)) + row.value
        top_customers = [(names[k], v) for k, v in top(by_customer)]
        top_models = [(name, value, cost_by_model.get(name)) for name, value in top(totals.by_model)]
        return web.page(
            request,
            session,
            "overview.html",
            "overview",
            rng=rng,
            origin=f"{request.url.scheme}://{request.headers.get('host', '127.0.0.1:8080')}",  # for the quickstart
            totals=totals,
            requests=int(requests),
            errors=int(errors),
            error_rate=fmt.percent(errors, requests),
            cost=cost,
            revenue=sorted(revenue.items()),
            margin=margin,
            top_customers=top_customers,
            top_models=top_models,
            tokens_chart=series_chart(token_rows, rng, "type"),
            models_chart=series_chart(token_rows, rng, "model"),
            requests_chart=series_chart(request_rows, rng, "status_code"),
        )

    async def meter_rows(request: Request) -> tuple[dict[str, Any], list[QueryRow]]:
        params = request.query_params
        meters = await deps.metering.meters()
        chosen = next((m for m in meters if m.slug == params.get("meter")), None) or next(
            (m for m in meters if m.slug == "llm_tokens"), meters[0] if meters else None
        )
        tz = fmt.zone(params.get("tz"))
        rng = fmt.time_range(params.get("range"), params.get("granularity"), tz, deps.clock.now())
        group = params.get("groupBy") or ""
        filter_text = (params.get("filter") or "").strip()
        context: dict[str, Any] = {"meters": meters, "meter": chosen, "rng": rng, "group": group, "filter": filter_text}
        if chosen is None:
            return context, []
        choices = ["subject", *chosen.group_by]
        context["choices"] = choices
        if group and group not in choices:
            raise ValidationError(f"meter {chosen.slug} has no group-by {group!r}", field="groupBy")
        filters: dict[str, tuple[str, ...]] = {}
        if filter_text:
            name, sep, value = filter_text.partition("=")
            if not sep or name.strip() not in chosen.group_by:
                raise ValidationError(
                    f"filter is name=value with a group-by of {chosen.slug} ({', '.join(chosen.group_by) or 'none'})",
                    field="filter",
                )
            filters[name.strip()] = (value.strip(),)
        query = MeterQuery(
            start=rng.start,
            end=rng.end,
            window_size=rng.window,
            window_tz=tz,
            group_by=(group,) if group else (),
            filter_group_by=filters,
        )
        return context, await deps.metering.query(chosen.slug, query)

    async def meters_page(request: Request, session: Session) -> Response:
        context, rows = await meter_rows(request)
        if context["meter"] is not None:
            group = context["group"]
            keyed = (
                [replace(r, group_by={**r.group_by, "subject": r.subject}) for r in rows]
                if group == "subject"
                else rows
            )
            context["chart"] = series_chart(keyed, context["rng"], group or "_", kind="line", stacked=False)
        newest = sorted(rows, key=lambda r: r.window_start, reverse=True)
        return web.page(
            request,
            session,
            "meters.html",
            "meters",
            rows=newest[:MAX_TABLE_ROWS],
            more=max(0, len(rows) - MAX_TABLE_ROWS),
            query_string=str(request.url.query),
            **context,
        )

    async def meters_csv(request: Request, session: Session) -> Response:
        context, rows = await meter_rows(request)
        group = context["group"]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["window_start", "window_end", group or "group", "value"])
        for row in sorted(rows, key=lambda r: r.window_start):
            label = row.subject if group == "subject" else row.group_by.get(group) if group else ""
            writer.writerow(
                [format_time(row.window_start), format_time(row.window_end), label or "", decimal_text(row.value)]
            )
        slug = context["meter"].slug if context["meter"] is not None else "meter"
        headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{slug}.csv"'}
        return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)

    async def live_rows() -> list[LiveRow]:
        return [live_row(e) for e in await deps.metering.latest(REQUEST_EVENT, LIVE_ROWS)]

    async def live(request: Request, session: Session) -> Response:
        return web.page(request, session, "live.html", "live", rows=await live_rows(), limit=LIVE_ROWS)

    async def live_part(request: Request, session: Session) -> Response:
        tz = fmt.zone(request.query_params.get("tz"))
        return web.render("live_rows.html", rows=await live_rows(), tz=tz)

    return [
        Route("/dashboard", web.admin(overview), methods=["GET"]),
        Route("/dashboard/meters", web.admin(meters_page), methods=["GET"]),
        Route("/dashboard/meters/csv", web.admin(meters_csv), methods=["GET"]),
        Route("/dashboard/live", web.admin(live), methods=["GET"]),
        Route("/dashboard/live/rows", web.admin(live_part), methods=["GET"]),
    ]
