"""The demo's story, step by step: a gateway call becomes metered usage, a previewed and then issued invoice,
a Stripe invoice that gets paid, and an HTML and PDF document. Everything runs offline in this process, through
the composition root, on a clock the demo moves (see timeline.py); Stripe is the local stand-in
(stripe_standin.py): no real Stripe account is used. The story serves Tollway and sets the scene; the gateway
traffic is traffic.py, the billing steps (preview, close, Stripe, documents) invoicing.py.
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
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from rich.table import Table

from tollway.bootstrap import build_app, build_runtime
from tollway.clock import FrozenClock
from tollway.config.schema import TollwayConfig
from tollway.demo.invoicing import close_period, pay_through_stripe, preview_invoice, save_documents
from tollway.demo.narrator import Narrator
from tollway.demo.setup import (
    CUSTOMER,
    INPUT_FEATURE,
    OUTPUT_FEATURE,
    REPLY_TOKENS,
    STRIPE_KEY,
    DemoFailed,
    DemoResult,
    QuietServer,
    captured_logs,
    load_demo_config,
    token_count,
)
from tollway.demo.stripe_standin import StripeStandIn
from tollway.demo.timeline import Timeline, month_timeline
from tollway.demo.traffic import send_requests
from tollway.listening import listen
from tollway.metering.events import format_time
from tollway.money import format_money
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
        self.narrator = Narrator(console, steps=8)
        self.workdir: Path | None = None
        self.stripe_standin: StripeStandIn | None = None
        self._started = time.monotonic()

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
                self.narrator.say(f"\nKept the demo's folder: {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)

    async def _run(self, workdir: Path) -> DemoResult:
        settings, timeline, config = self._workspace(workdir)
        clock = FrozenClock(timeline.period_start)
        runtime = build_runtime(settings, config, clock)
        if runtime.billing is None or runtime.invoices is None:
            raise DemoFailed("this build of Tollway has no billing worker")
        runtime.billing.set_sync(None)  # the demo runs the close and the Stripe steps one at a time
        self.narrator.step("Tollway, served in this process")
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
            self.narrator.say(f"Tollway serves the gateway on {base}/v1 and the management API on {base}/api/v1.")
            self.narrator.say(
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
        self.narrator.step("A workspace")
        database = workdir / "tollway.db"
        self.narrator.say(f"Temporary folder: {workdir}")
        self.narrator.say(f"SQLite database:  {database}")
        stripe: dict[str, Any] = {}
        if self.stripe_wanted:
            self.stripe_standin = StripeStandIn().start()
            stripe = {
                "stripe_secret_key": STRIPE_KEY,
                "stripe_api_base": self.stripe_standin.origin,
                "stripe_webhook_secret": "whsec_" + secrets.token_hex(16),
            }
            self.narrator.say(
                f"Stripe: local stand-in at {self.stripe_standin.origin} (no real Stripe account is used)"
            )
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

        self.narrator.step("The gateway and the catalog")
        config, source = load_demo_config()
        self.narrator.say(f"From {source} (the simulator answers with {REPLY_TOKENS} tokens here, without a delay):")
        self.narrator.say(
            "  gateway: "
            + ", ".join(f"provider {p.name} ({p.type})" for p in config.providers)
            + "; "
            + ", ".join(f"model {m.name}" for m in config.models)
            + "; "
            + ", ".join(f"consumer {c.username}" for c in config.consumers)
        )
        for feature in config.features:
            filters = ", ".join(f"{k}={v}" for k, v in feature.filters.items())
            self.narrator.say(
                f"  feature {feature.key}: meter {feature.meter}" + (f" where {filters}" if filters else "")
            )
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
        self.narrator.say(
            f"  customer {customer.key} ({customer.name}) pays for the usage of {', '.join(customer.usage_from)}, "
            f"subscribed to {plan.name} from {format_time(timeline.period_start)} "
            f"(billing period {format_time(timeline.period_start)} to {format_time(timeline.period_end)})"
        )
        return settings, timeline, config

    def _dashboard(self, base: str, settings: Settings) -> None:
        self.narrator.say("")
        self.narrator.say(
            f"Dashboard: {base}/dashboard?range=30d  (sign in with the admin token {settings.admin_token})"
        )
        if not self.serve:
            self.narrator.say(
                "(run `tollway demo --serve` to keep it serving and look at the demo's data in a browser)"
            )

    async def _serve_until_stopped(self, base: str) -> None:
        """Serve the demo's data until SIGINT or SIGTERM (the demo clock stays where the story left it)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        self.narrator.say(f"Serving on {base} until Ctrl-C.")
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        self.narrator.say("Stopped.")

    async def _story(
        self,
        runtime: Runtime,
        clock: FrozenClock,
        timeline: Timeline,
        base: str,
        admin: httpx.AsyncClient,
        settings: Settings,
    ) -> DemoResult:
        narrator = self.narrator
        replies = await send_requests(narrator, clock, timeline, base)
        expected = {
            INPUT_FEATURE: sum(r.input_tokens for r in replies),
            OUTPUT_FEATURE: sum(r.output_tokens for r in replies),
        }
        preview = await preview_invoice(narrator, clock, timeline, admin, expected)
        invoice = await close_period(narrator, runtime, clock, timeline, admin, preview)
        invoice = await pay_through_stripe(narrator, self.stripe_standin, runtime, clock, admin, settings, invoice)
        assert self.workdir is not None
        folder = self.out or self.workdir
        html, pdf = await save_documents(narrator, admin, invoice, folder, temporary=self.out is None and not self.keep)
        self.console.print()
        self.console.rule("[bold green]Done", align="left")
        self.narrator.say(
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
