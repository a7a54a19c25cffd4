"""The demo's story, step by step: a gateway call becomes metered usage, a previewed and then issued invoice,
a Stripe invoice that gets paid, and an HTML and PDF document. Everything runs offline in this process, through
the composition root, on a clock the demo moves (see timeline.py); Stripe is the local stand-in
(stripe_standin.py): no real Stripe account is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import signal
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from openai import AsyncOpenAI
from rich.console import Console
from rich.table import Table

from tollway.adapters.stripe.client import StripeApi
from tollway.adapters.stripe.sync import StripeSync
from tollway.bootstrap import build_app, build_runtime
from tollway.clock import FrozenClock
from tollway.config.schema import TollwayConfig
from tollway.demo.setup import (
    API_KEY,
    CUSTOMER,
    INPUT_FEATURE,
    MODEL,
    OUTPUT_FEATURE,
    PAID_AFTER,
    REPLY_TOKENS,
    REQUESTS,
    STRIPE_KEY,
    SUBJECT,
    USAGE_TIMEOUT_S,
    DemoFailed,
    DemoResult,
    QuietServer,
    Reply,
    cached_tokens,
    captured_logs,
    first_reason,
    json_body,
    line_quantities,
    load_demo_config,
    prompt,
    token_count,
)
from tollway.demo.stripe_standin import StripeStandIn
from tollway.demo.timeline import Timeline, month_timeline
from tollway.listening import listen
from tollway.metering.events import format_time
from tollway.money import format_money, format_quantity
from tollway.runtime.process import Runtime
from tollway.settings import Settings

__all__ = ["DemoFailed", "DemoResult", "Story"]


class Story:
    def __init__(
        self,
        console: Console,
        *,
        out: Path | None = None,
        keep: bool = False,
        stripe: bool = True,
        today: datetime | None = None,
        serve: bool = False,
        port: int = 0,
    ) -> None:
        self.console = console
        self.out = out
        self.keep = keep
        self.stripe_wanted = stripe
        self.serve = serve  # keep serving after the story, until Ctrl-C / SIGTERM, for a look at the dashboard
        self.port = port
        self.today = today or datetime.now(UTC)
        self.steps = 8
        self._step_no = 0
        self.workdir: Path | None = None
        self.stripe_standin: StripeStandIn | None = None
        self._started = time.monotonic()

    # -- output --------------------------------------------------------------------------------------

    def step(self, title: str) -> None:
        self._step_no += 1
        self.console.print()
        self.console.rule(f"[bold cyan]Step {self._step_no}/{self.steps}: {title}", align="left")

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    # -- the story -----------------------------------------------------------------------------------

    async def run(self) -> DemoResult:
        self._started = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix="tollway-demo-"))
        try:
            with captured_logs() as logs:
                try:
                    return await self._run(self.workdir)
                except DemoFailed:
                    raise
                except Exception as exc:
                    hint = f" (last warning: {logs.records[-1]})" if logs.records else ""
                    raise DemoFailed(f"{exc.__class__.__name__}: {exc}{hint}") from exc
        finally:
            if self.stripe_standin is not None:
                self.stripe_standin.stop()
            if self.keep:
                self.say(f"\nKept the demo's folder: {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)

    async def _run(self, workdir: Path) -> DemoResult:
        settings, timeline, config = self._workspace(workdir)
        clock = FrozenClock(timeline.period_start)
        runtime = build_runtime(settings, config, clock)
        if runtime.billing is None or runtime.invoices is None:
            raise DemoFailed("this build of Tollway has no billing worker")
        runtime.billing.set_sync(None)  # the demo runs the close and the Stripe steps one at a time
        self.step("Tollway, served in this process")
        sock = listen("127.0.0.1", self.port)
        port = int(sock.getsockname()[1])
        base = f"http://127.0.0.1:{port}"
        server = QuietServer(
            uvicorn.Config(build_app(runtime), log_config=None, access_log=False, lifespan="on", log_level="error")
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if serving.done():
                    serving.result()
                    raise DemoFailed("Tollway did not start")
                await asyncio.sleep(0.02)
            self.say(f"Tollway serves the gateway on {base}/v1 and the management API on {base}/api/v1.")
            self.say(
                f"Built by the composition root (tollway.bootstrap). The clock is the demo's: it started at "
                f"{format_time(timeline.period_start)}, when the catalog was applied and Acme Corp's subscription "
                "began."
            )
            admin = httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {settings.admin_token}"}, timeout=30
            )
            try:
                result = await self._story(runtime, clock, timeline, base, admin, settings)
            finally:
                await admin.aclose()
            self._dashboard(base, settings)
            if self.serve:
                await self._serve_until_stopped(base)
            return result
        finally:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await serving
            sock.close()

    def _workspace(self, workdir: Path) -> tuple[Settings, Timeline, TollwayConfig]:
        self.step("A workspace")
        database = workdir / "tollway.db"
        self.say(f"Temporary folder: {workdir}")
        self.say(f"SQLite database:  {database}")
        stripe: dict[str, Any] = {}
        if self.stripe_wanted:
            self.stripe_standin = StripeStandIn().start()
            stripe = {
                "stripe_secret_key": STRIPE_KEY,
                "stripe_api_base": self.stripe_standin.origin,
                "stripe_webhook_secret": "whsec_" + secrets.token_hex(16),
            }
            self.say(f"Stripe: local stand-in at {self.stripe_standin.origin} (no real Stripe account is used)")
        settings = Settings(
            database_url=f"sqlite:///{database}",
            journal_dir=str(workdir / "journal"),
            admin_token="demo-" + secrets.token_hex(8),
            flush_interval_s=0.05,
            log_level="error",
            billing_worker=False,
            **stripe,
        )
        timeline = month_timeline(self.today, timedelta(seconds=settings.invoice_grace_s))

        self.step("The gateway and the catalog")
        config, source = load_demo_config()
        self.say(f"From {source} (the simulator answers with {REPLY_TOKENS} tokens here, without a delay):")
        self.say(
            "  gateway: "
            + ", ".join(f"provider {p.name} ({p.type})" for p in config.providers)
            + "; "
            + ", ".join(f"model {m.name}" for m in config.models)
            + "; "
            + ", ".join(f"consumer {c.username}" for c in config.consumers)
        )
        for feature in config.features:
            filters = ", ".join(f"{k}={v}" for k, v in feature.filters.items())
            self.say(f"  feature {feature.key}: meter {feature.meter}" + (f" where {filters}" if filters else ""))
        customer = next(c for c in config.customers if c.key == CUSTOMER)
        plan_key = customer.subscription.plan if customer.subscription else None
        plan = next((p for p in config.plans if p.key == plan_key), None)
        if plan is None or customer.subscription is None:
            raise DemoFailed(f"the config subscribes customer {CUSTOMER!r} to no plan it defines")
        table = Table(title=f"Plan {plan.name} ({plan.currency}, billed every {plan.billing_cadence})")
        table.add_column("rate card")
        table.add_column("price", justify="right")
        for card in plan.rate_cards or []:
            price = card.price
            what = f"{price.amount} {plan.currency} per unit" if price and price.type == "unit" else str(price)
            table.add_row(card.feature or card.key or "", what)
        self.console.print(table)
        self.say(
            f"  customer {customer.key} ({customer.name}) pays for the usage of {', '.join(customer.usage_from)}, "
            f"subscribed to {plan.name} from {format_time(timeline.period_start)} "
            f"(billing period {format_time(timeline.period_start)} to {format_time(timeline.period_end)})"
        )
        return settings, timeline, config

    def _dashboard(self, base: str, settings: Settings) -> None:
        self.say("")
        self.say(f"Dashboard: {base}/dashboard?range=30d  (sign in with the admin token {settings.admin_token})")
        if not self.serve:
            self.say("(run `tollway demo --serve` to keep it serving and look at the demo's data in a browser)")

    async def _serve_until_stopped(self, base: str) -> None:
        """Serve the demo's data until SIGINT or SIGTERM (the demo clock stays where the story left it)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        self.say(f"Serving on {base} until Ctrl-C.")
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        self.say("Stopped.")

    async def _story(
        self,
        runtime: Runtime,
        clock: FrozenClock,
        timeline: Timeline,
        base: str,
        admin: httpx.AsyncClient,
        settings: Settings,
    ) -> DemoResult:
        replies = await self._requests(clock, timeline, base)
        expected = {
            INPUT_FEATURE: sum(r.input_tokens for r in replies),
            OUTPUT_FEATURE: sum(r.output_tokens for r in replies),
        }
        preview = await self._preview(clock, timeline, admin, expected)
        invoice = await self._close(runtime, clock, timeline, admin, preview)
        invoice = await self._stripe(runtime, clock, admin, settings, invoice)
        html, pdf = await self._documents(admin, invoice)
        self.console.print()
        self.console.rule("[bold green]Done", align="left")
        self.say(
            f"Invoice {invoice['number']} for {token_count(expected[INPUT_FEATURE])} input and "
            f"{token_count(expected[OUTPUT_FEATURE])} output tokens, "
            f"{format_money(int(invoice['totalMinor']), invoice['currency'])}: {invoice['status']}. "
            f"({time.monotonic() - self._started:.1f} s)"
        )
        return DemoResult(
            invoice_id=invoice["id"],
            invoice_number=invoice["number"],
            status=invoice["status"],
            html=html,
            pdf=pdf,
            stripe_invoice_id=invoice.get("stripeInvoiceId"),
            stripe_status=invoice.get("stripeStatus"),
        )

    async def _requests(self, clock: FrozenClock, timeline: Timeline, base: str) -> list[Reply]:
        self.step("Six requests through the gateway as acme-corp")
        self.say(f'The official openai SDK: AsyncOpenAI(base_url="{base}/v1", api_key="{API_KEY}"), model "{MODEL}",')
        self.say(
            f"on {timeline.first_request:%Y-%m-%d} from {timeline.first_request:%H:%M} UTC (demo clock), one a minute; "
            "each question comes with a pasted log of support tickets."
        )
        client = AsyncOpenAI(base_url=f"{base}/v1", api_key=API_KEY, max_retries=0)
        replies: list[Reply] = []
        table = Table()
        table.add_column("#", justify="right")
        table.add_column("time")
        table.add_column("mode")
        table.add_column("question (+ ticket log)", no_wrap=True, overflow="ellipsis", max_width=30)
        table.add_column("input tokens", justify="right")
        table.add_column("output tokens", justify="right")
        try:
            for index, (question, streamed) in enumerate(REQUESTS):
                clock.set(timeline.request_at(index))
                text = prompt(index, question)
                reply = await (self._stream(client, text) if streamed else self._complete(client, text))
                replies.append(reply)
                table.add_row(
                    str(index + 1),
                    timeline.request_at(index).strftime("%H:%M"),
                    "stream" if streamed else "plain",
                    question,
                    format_quantity(Decimal(reply.input_tokens)),
                    format_quantity(Decimal(reply.output_tokens)),
                )
        finally:
            await client.close()
        self.console.print(table)
        self.say(
            f"The responses reported {token_count(sum(r.input_tokens for r in replies))} input and "
            f"{token_count(sum(r.output_tokens for r in replies))} output tokens in all."
        )
        return replies

    async def _complete(self, client: AsyncOpenAI, prompt: str) -> Reply:
        completion = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}])
        if completion.usage is None:
            raise DemoFailed("the gateway answered without a usage block")
        return Reply(
            prompt=prompt,
            streamed=False,
            answer=completion.choices[0].message.content or "",
            input_tokens=completion.usage.prompt_tokens - cached_tokens(completion.usage),
            output_tokens=completion.usage.completion_tokens,
        )

    async def _stream(self, client: AsyncOpenAI, prompt: str) -> Reply:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
        parts: list[str] = []
        usage: Any = None
        async for chunk in stream:
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
            if chunk.usage is not None:
                usage = chunk.usage
        if usage is None:
            raise DemoFailed("the stream ended without a usage chunk")
        return Reply(
            prompt=prompt,
            streamed=True,
            answer="".join(parts),
            input_tokens=usage.prompt_tokens - cached_tokens(usage),
            output_tokens=usage.completion_tokens,
        )

    async def _preview(
        self, clock: FrozenClock, timeline: Timeline, admin: httpx.AsyncClient, expected: dict[str, int]
    ) -> dict[str, Any]:
        self.step("Invoice preview")
        wanted = {"input": expected[INPUT_FEATURE], "output": expected[OUTPUT_FEATURE]}
        params = {
            "subject": SUBJECT,
            "groupBy": "type",
            "from": format_time(timeline.period_start),
            "to": format_time(timeline.period_end),
        }
        deadline = time.monotonic() + USAGE_TIMEOUT_S
        stored: dict[str, int] = {}
        while True:
            body = json_body(await admin.get("/api/v1/meters/llm_tokens/query", params=params))
            stored = {row["groupBy"]["type"]: int(Decimal(row["value"])) for row in body["data"]}
            if all(stored.get(kind) == count for kind, count in wanted.items()):
                break
            if time.monotonic() > deadline:
                raise DemoFailed(
                    f"usage not stored within {USAGE_TIMEOUT_S:.0f} s: metered {stored}, expected {wanted}"
                )
            await asyncio.sleep(0.1)
        self.say(
            f"Metered for {SUBJECT} (GET /api/v1/meters/llm_tokens/query): "
            + ", ".join(f"{kind} {token_count(count)}" for kind, count in sorted(stored.items()))
        )
        clock.set(timeline.preview_at)
        preview = json_body(await admin.get("/api/v1/invoices/preview", params={"customer": CUSTOMER}))
        self.say(f"GET /api/v1/invoices/preview?customer={CUSTOMER} at {format_time(timeline.preview_at)}:")
        self._lines_table(preview, "Preview (draft, usage so far)")
        quantities = line_quantities(preview)
        self.say(
            f"Preview: {token_count(quantities.get(INPUT_FEATURE, 0))} input tokens, "
            f"{token_count(quantities.get(OUTPUT_FEATURE, 0))} output "
            f"tokens, total {format_money(int(preview['totalMinor']), preview['currency'])}"
        )
        for key, count in expected.items():
            if quantities.get(key) != count:
                raise DemoFailed(f"the preview bills {quantities.get(key)} for {key}; the responses reported {count}")
        self.say("[green]✓[/green] the preview's token counts equal what the six responses reported.")
        return preview

    async def _close(
        self,
        runtime: Runtime,
        clock: FrozenClock,
        timeline: Timeline,
        admin: httpx.AsyncClient,
        preview: dict[str, Any],
    ) -> dict[str, Any]:
        self.step("Period close")
        clock.set(timeline.close_at)
        self.say(
            f"The demo clock moves to {format_time(timeline.close_at)}: past the period end "
            f"({format_time(timeline.period_end)}) and the grace period. The billing worker's close step runs once."
        )
        assert runtime.billing is not None
        report = await runtime.billing.run_once()
        if report is None:
            raise DemoFailed("the period closer failed")
        listed = json_body(await admin.get("/api/v1/invoices", params={"customer": CUSTOMER}))
        invoices = listed["items"]
        if len(invoices) != 1:
            raise DemoFailed(f"expected one invoice for {CUSTOMER}, found {len(invoices)}")
        invoice: dict[str, Any] = invoices[0]
        self._lines_table(invoice, f"Invoice {invoice['number']} ({invoice['status']})")
        quantities = line_quantities(invoice)
        total = format_money(int(invoice["totalMinor"]), invoice["currency"])
        self.say(
            f"Invoice {invoice['number']} {invoice['status']}: {token_count(quantities.get(INPUT_FEATURE, 0))} "
            f"input tokens, {token_count(quantities.get(OUTPUT_FEATURE, 0))} output tokens, total {total}, "
            f"due {invoice['dueAt']}"
        )
        if quantities != line_quantities(preview) or invoice["total"] != preview["total"]:
            raise DemoFailed("the issued invoice differs from the preview although no usage came in between")
        self.say("[green]✓[/green] the same lines and total as the preview.")
        return invoice

    async def _stripe(
        self,
        runtime: Runtime,
        clock: FrozenClock,
        admin: httpx.AsyncClient,
        settings: Settings,
        invoice: dict[str, Any],
    ) -> dict[str, Any]:
        self.step("Stripe")
        invoice_id = invoice["id"]
        if self.stripe_standin is None or not settings.stripe_secret_key or not settings.stripe_webhook_secret:
            self.say("Stripe skipped (--no-stripe)")
            paid = json_body(await admin.post(f"/api/v1/invoices/{invoice_id}/mark-paid"))
            self.say(f"Marked paid through the API instead: POST /api/v1/invoices/{invoice_id}/mark-paid")
            self.say(f"Invoice {paid['number']} is now {paid['status']}.")
            return paid
        self.say(
            f"TOLLWAY_STRIPE_API_BASE={settings.stripe_api_base} (the local Stripe stand-in), secret key {STRIPE_KEY}"
        )
        api = StripeApi(settings.stripe_secret_key, api_base=settings.stripe_api_base)
        assert runtime.invoices is not None
        sync = StripeSync(store=runtime.invoices.store, customers=runtime.catalog.customers, api=api, clock=clock)
        with captured_logs() as logs:
            try:
                completed = await sync.run_once()
            finally:
                await api.close()
        customer = await runtime.catalog.customers.customer(CUSTOMER)
        if customer.stripe_customer_id:
            self.say(f"Stripe customer for {customer.name}: {customer.stripe_customer_id}")
        synced = json_body(await admin.get(f"/api/v1/invoices/{invoice_id}"))
        stripe_invoice: str | None = synced.get("stripeInvoiceId")
        if not completed or not stripe_invoice:
            reason = first_reason(logs.records[-1]) if logs.records else "no reason given"
            raise DemoFailed(f"the Stripe sync did not complete: {reason}")
        items = len(self.stripe_standin.items_of(stripe_invoice))
        self.say(
            f"Stripe invoice: {stripe_invoice}, {items} items (one per line), finalized: {synced.get('stripeStatus')}"
        )
        # Stripe tells Tollway about the payment with a signed webhook; the demo plays Stripe's part.
        clock.advance(PAID_AFTER)
        self.say(f"Three days later ({format_time(clock.now())}) Acme Corp pays; Stripe sends invoice.paid.")
        self.stripe_standin.pay(stripe_invoice, at=clock.now())
        payload, signature = self.stripe_standin.webhook(
            "invoice.paid", stripe_invoice, secret=settings.stripe_webhook_secret, at=clock.now()
        )
        async with httpx.AsyncClient(base_url=admin.base_url, timeout=30) as stripe_side:  # no admin token
            answer = json_body(
                await stripe_side.post(
                    "/api/v1/stripe/webhook",
                    content=payload,
                    headers={"Content-Type": "application/json", "Stripe-Signature": signature},
                )
            )
        self.say(
            f"POST /api/v1/stripe/webhook: a signed invoice.paid event (Stripe-Signature t=…,v1=HMAC-SHA256) "
            f"-> {answer.get('action')}"
        )
        paid = json_body(await admin.get(f"/api/v1/invoices/{invoice_id}"))
        if paid["status"] != "paid":
            raise DemoFailed(f"the webhook left invoice {paid['number']} {paid['status']}")
        self.say(f"Invoice {paid['number']} is now {paid['status']} (paid at {paid['paidAt']}).")
        return paid

    async def _documents(self, admin: httpx.AsyncClient, invoice: dict[str, Any]) -> tuple[Path, Path]:
        self.step("Invoice documents")
        assert self.workdir is not None
        folder = self.out or self.workdir
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for suffix in ("html", "pdf"):
            response = await admin.get(f"/api/v1/invoices/{invoice['id']}.{suffix}")
            if response.status_code != 200:
                raise DemoFailed(f"GET /api/v1/invoices/{invoice['id']}.{suffix}: HTTP {response.status_code}")
            path = folder / f"{invoice['number']}.{suffix}"
            path.write_bytes(response.content)
            paths.append(path)
            self.say(f"{suffix.upper()}: {path} ({len(response.content):,} bytes)")
        if self.out is None and not self.keep:
            self.say("(the temporary folder is removed when the demo ends: use --out DIR or --keep to keep them)")
        return paths[0], paths[1]

    # -- tables --------------------------------------------------------------------------------------

    def _lines_table(self, invoice: dict[str, Any], title: str) -> None:
        currency = invoice["currency"]
        table = Table(title=title)
        table.add_column("line")
        table.add_column("quantity", justify="right")
        table.add_column(f"rate ({currency})", justify="right")
        table.add_column(f"amount ({currency})", justify="right")
        for line in invoice["lines"]:
            charge = line.get("charge") or {}
            quantity = line.get("quantity")
            table.add_row(
                line.get("featureKey") or line.get("rateCardKey") or line["name"],
                format_quantity(Decimal(quantity)) if quantity is not None else "",
                charge.get("unitPrice") or "",
                line["amount"],
            )
        table.add_section()
        table.add_row("total", "", "", format_money(int(invoice["totalMinor"]), currency))
        self.console.print(table)
