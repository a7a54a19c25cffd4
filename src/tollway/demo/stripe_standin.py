"""A local stand-in for Stripe's API, for demos and tests: never for production (nothing is charged, and the
state lives in memory only). `tollway demo` points Tollway's Stripe settings at it; the tests use it where
localstripe lacks what Tollway needs: draft invoices that exclude pending items, invoice items attached to a
given invoice, finalize, void, delete, pay out of band, mark uncollectible, and idempotency-key replay.

It is faithful to Stripe's documented wire format: form-encoded bodies with bracketed keys (metadata[k]=v,
period[start]=...), JSON objects with `object`, errors as {"error": {"type", "message", "param"}} with Stripe's
status codes, and the `Idempotency-Key` header (a replay returns the stored reply with `Idempotent-Replayed:
true`; the same key with other parameters is an idempotency_error).

Faults (for tests): `fail(method, path_pattern, status, after=...)` makes the next matching request fail; with
`after=True` the request is carried out (and its reply stored for the key) before the client gets the error:
a reply lost on the way back.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self
from urllib.parse import parse_qsl

import orjson
from aiohttp import web


@dataclass
class Fault:
    method: str
    pattern: str
    status: int
    after: bool


@dataclass
class Call:
    method: str
    path: str
    idempotency_key: str | None
    params: dict[str, Any]
    replayed: bool = False


@dataclass
class StripeState:
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)


class StripeUserError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracketed form keys as nested dicts (lists are not needed by the calls faked here)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class StripeStandIn:
    """Stripe's API for the calls Tollway makes, served on a loopback port from its own thread and event loop
    (so a process that blocks, or the caller's own loop, does not stall it). `start()`, then point
    TOLLWAY_STRIPE_API_BASE at `origin`; any `Bearer sk_...` key is accepted."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))  # held from now on: the port is ours before the server starts
        self.port = int(self._socket.getsockname()[1])
        self.origin = f"http://{host}:{self.port}"
        self.state = StripeState()
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.idempotency = True  # False: keys are ignored (as after Stripe's 24 h expiry)
        self.log: Callable[[str], None] | None = None  # one line per request handled (`tollway stripe-standin`)
        self._replies: dict[str, tuple[str, int, bytes]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stripe-stand-in", daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._socket.close()

    def fail(self, method: str, pattern: str, status: int = 500, *, after: bool = False) -> None:
        self.faults.append(Fault(method, pattern, status, after))

    # -- dispatch -------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        if not _authorized(request.headers.get("Authorization", "")):
            return _error(StripeUserError(401, "Invalid API Key provided", kind="invalid_request_error"))
        raw = await request.text()
        pairs = list(request.query.items()) if request.method == "GET" else _form_pairs(raw)
        params = parse_form(pairs)
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        call = Call(request.method, request.path, key, params)
        self.calls.append(call)
        fault = self._fault(request.method, request.path)
        if fault is not None and not fault.after:
            return _error(StripeUserError(fault.status, "injected failure", kind="api_error"))
        if key and self.idempotency and key in self._replies:
            signature, status, body = self._replies[key]
            if signature != _signature(request.method, request.path, params):
                return _error(
                    StripeUserError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters",
                        kind="idempotency_error",
                    )
                )
            call.replayed = True
            return web.Response(
                body=body, status=status, content_type="application/json", headers={"Idempotent-Replayed": "true"}
            )
        try:
            status, payload = 200, self.dispatch(request.method, request.path, params)
        except StripeUserError as exc:
            status, payload = exc.status, {"error": {"type": exc.kind, "message": exc.message, "param": exc.param}}
        body = orjson.dumps(payload)
        if self.log is not None:
            self.log(f"{request.method} {request.path} -> {status} {payload.get('id') or ''}".rstrip())
        if key and self.idempotency and status < 500:
            self._replies[key] = (_signature(request.method, request.path, params), status, body)
        if fault is not None:
            return _error(
                StripeUserError(fault.status, "injected failure after the request was carried out", kind="api_error")
            )
        return web.Response(body=body, status=status, content_type="application/json")

    def _fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and re.fullmatch(fault.pattern, path):
                self.faults.remove(fault)
                return fault
        return None

    def dispatch(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        s = self.state
        if (method, path) == ("POST", "/v1/customers"):
            return self._create_customer(params)
        if method == "GET" and (m := re.fullmatch(r"/v1/customers/([^/]+)", path)):
            return _found(s.customers, m[1], "customer")
        if (method, path) == ("POST", "/v1/invoices"):
            return self._create_invoice(params)
        if (method, path) == ("GET", "/v1/invoices"):  # newest first, as Stripe lists them
            listed = [i for i in s.invoices.values() if params.get("customer") in (None, i["customer"])]
            return {
                "object": "list",
                "url": "/v1/invoices",
                "has_more": False,
                "data": [self._export_invoice(i) for i in reversed(listed)],
            }
        if method == "GET" and (m := re.fullmatch(r"/v1/invoices/([^/]+)", path)):
            return self._export_invoice(_found(s.invoices, m[1], "invoice"))
        if method == "DELETE" and (m := re.fullmatch(r"/v1/invoices/([^/]+)", path)):
            invoice = _found(s.invoices, m[1], "invoice")
            if invoice["status"] != "draft":
                raise StripeUserError(400, "You can only delete draft invoices.")
            del s.invoices[invoice["id"]]
            for item_id in [i for i, item in s.items.items() if item["invoice"] == invoice["id"]]:
                del s.items[item_id]
            return {"id": invoice["id"], "object": "invoice", "deleted": True}
        if method == "POST" and (m := re.fullmatch(r"/v1/invoices/([^/]+)/finalize", path)):
            invoice = _found(s.invoices, m[1], "invoice")
            if invoice["status"] != "draft":
                raise StripeUserError(
                    400, "This invoice is already finalized, you can't re-finalize a non-draft invoice."
                )
            invoice["status"] = "open" if self._total(invoice["id"]) > 0 else "paid"
            invoice["auto_advance"] = params.get("auto_advance", "true") == "true"
            invoice["number"] = invoice["number"] or f"FAKE-{len(s.invoices):04d}"
            return self._export_invoice(invoice)
        if method == "POST" and (m := re.fullmatch(r"/v1/invoices/([^/]+)/void", path)):
            invoice = _found(s.invoices, m[1], "invoice")
            if invoice["status"] not in ("open", "uncollectible"):
                raise StripeUserError(400, f"You can only void open or uncollectible invoices ({invoice['status']}).")
            invoice["status"] = "void"
            return self._export_invoice(invoice)
        if method == "POST" and (m := re.fullmatch(r"/v1/invoices/([^/]+)/pay", path)):
            invoice = _found(s.invoices, m[1], "invoice")
            if invoice["status"] not in ("open", "uncollectible"):
                raise StripeUserError(400, f"Invoice is already {invoice['status']}.")
            if params.get("paid_out_of_band") != "true":
                raise StripeUserError(400, "The stand-in only records payments made out of band.")
            invoice["status"] = "paid"
            invoice["paid_out_of_band"] = True
            return self._export_invoice(invoice)
        if method == "POST" and (m := re.fullmatch(r"/v1/invoices/([^/]+)/mark_uncollectible", path)):
            invoice = _found(s.invoices, m[1], "invoice")
            if invoice["status"] != "open":
                raise StripeUserError(400, f"You can only mark open invoices uncollectible ({invoice['status']}).")
            invoice["status"] = "uncollectible"
            return self._export_invoice(invoice)
        if (method, path) == ("POST", "/v1/invoiceitems"):
            return self._create_item(params)
        if (method, path) == ("GET", "/v1/invoiceitems"):
            return self._list_items(params)
        raise StripeUserError(404, f"Unrecognized request URL ({method}: {path}).")

    # -- resources ------------------------------------------------------------------------------

    def _create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = {
            "id": "cus_" + secrets.token_hex(7),
            "object": "customer",
            "name": params.get("name"),
            "email": params.get("email"),
            "address": params.get("address"),
            "metadata": params.get("metadata", {}),
        }
        self.state.customers[customer["id"]] = customer
        return customer

    def _create_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = params.get("customer")
        if customer not in self.state.customers:
            raise StripeUserError(400, f"No such customer: '{customer}'", param="customer")
        if params.get("pending_invoice_items_behavior") not in ("exclude", "include", None):
            raise StripeUserError(400, "Invalid pending_invoice_items_behavior", param="pending_invoice_items_behavior")
        number = params.get("number")
        if number and any(i["number"] == number for i in self.state.invoices.values()):
            raise StripeUserError(400, f"Invoice number {number} already exists", param="number")
        invoice = {
            "id": "in_" + secrets.token_hex(7),
            "object": "invoice",
            "customer": customer,
            "currency": params.get("currency", "usd"),
            "description": params.get("description"),
            "number": number,
            "status": "draft",
            "auto_advance": params.get("auto_advance") == "true",
            "collection_method": params.get("collection_method", "charge_automatically"),
            "metadata": params.get("metadata", {}),
        }
        self.state.invoices[invoice["id"]] = invoice
        if params.get("pending_invoice_items_behavior") == "include":
            for item in self.state.items.values():
                if item["customer"] == customer and item["invoice"] is None:
                    item["invoice"] = invoice["id"]
        return self._export_invoice(invoice)

    def _create_item(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = params.get("customer")
        if customer not in self.state.customers:
            raise StripeUserError(400, f"No such customer: '{customer}'", param="customer")
        invoice_id = params.get("invoice")
        if invoice_id is not None:
            invoice = _found(self.state.invoices, invoice_id, "invoice")
            if invoice["status"] != "draft":
                raise StripeUserError(400, "Invoice items can only be added to draft invoices", param="invoice")
            if invoice["customer"] != customer:
                raise StripeUserError(400, "The invoice belongs to another customer", param="invoice")
        try:
            amount = int(params["amount"])
        except (KeyError, ValueError):
            raise StripeUserError(400, "Missing or invalid amount", param="amount") from None
        period = params.get("period", {})
        item = {
            "id": "ii_" + secrets.token_hex(7),
            "object": "invoiceitem",
            "customer": customer,
            "invoice": invoice_id,
            "amount": amount,
            "currency": params.get("currency"),
            "description": params.get("description"),
            "period": {"start": int(period["start"]), "end": int(period["end"])} if period else None,
            "metadata": params.get("metadata", {}),
        }
        self.state.items[item["id"]] = item
        return item

    def _list_items(self, params: dict[str, Any]) -> dict[str, Any]:
        items = [i for i in self.state.items.values() if i["invoice"] == params.get("invoice")]
        limit = int(params.get("limit", 10))
        after = params.get("starting_after")
        if after:
            ids = [i["id"] for i in items]
            items = items[ids.index(after) + 1 :]
        return {"object": "list", "url": "/v1/invoiceitems", "data": items[:limit], "has_more": len(items) > limit}

    def _total(self, invoice_id: str) -> int:
        return sum(item["amount"] for item in self.state.items.values() if item["invoice"] == invoice_id)

    def _export_invoice(self, invoice: dict[str, Any]) -> dict[str, Any]:
        lines = [i for i in self.state.items.values() if i["invoice"] == invoice["id"]]
        total = sum(i["amount"] for i in lines)
        return {
            **invoice,
            "total": total,
            "amount_due": max(0, total),
            "lines": {"object": "list", "data": lines, "has_more": False},
        }

    # -- Stripe's side of a payment (demos) ----------------------------------------------------------

    def pay(self, invoice_id: str, *, at: datetime) -> dict[str, Any]:
        """The customer pays an open invoice, as Stripe's collection would: status paid, `paid_at` recorded."""
        invoice = _found(self.state.invoices, invoice_id, "invoice")
        if invoice["status"] != "open":
            raise StripeUserError(400, f"Invoice {invoice_id} is {invoice['status']}, not open")
        invoice["status"] = "paid"
        invoice["status_transitions"] = {"paid_at": int(at.timestamp())}
        return self._export_invoice(invoice)

    def webhook(self, event_type: str, invoice_id: str, *, secret: str, at: datetime) -> tuple[bytes, str]:
        """The event Stripe sends a webhook endpoint about an invoice: its JSON body and its `Stripe-Signature`
        header (`t=<unix time>,v1=<HMAC-SHA256 of "t.body" keyed with the endpoint's signing secret>`)."""
        created = int(at.timestamp())
        event = {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "type": event_type,
            "created": created,
            "data": {"object": self._export_invoice(_found(self.state.invoices, invoice_id, "invoice"))},
        }
        body = orjson.dumps(event)
        signature = hmac.new(secret.encode(), f"{created}.".encode() + body, hashlib.sha256).hexdigest()
        return body, f"t={created},v1={signature}"

    # -- for assertions ---------------------------------------------------------------------------

    def items_of(self, invoice_id: str) -> list[dict[str, Any]]:
        return [i for i in self.state.items.values() if i["invoice"] == invoice_id]


def _authorized(header: str) -> bool:
    """A secret key, as Stripe takes it: `Bearer sk_...`, or HTTP Basic with the key as the user (curl -u sk_...:)."""
    scheme, _, value = header.partition(" ")
    if scheme == "Bearer":
        return value.startswith("sk_")
    if scheme == "Basic":
        try:
            return base64.b64decode(value).decode().startswith("sk_")
        except (ValueError, UnicodeDecodeError):
            return False
    return False


def _form_pairs(raw: str) -> list[tuple[str, str]]:
    return parse_qsl(raw, keep_blank_values=True)


def _signature(method: str, path: str, params: dict[str, Any]) -> str:
    return method + " " + path + " " + orjson.dumps(params, option=orjson.OPT_SORT_KEYS).decode()


def _found(table: dict[str, dict[str, Any]], object_id: str, kind: str) -> dict[str, Any]:
    if object_id not in table:
        raise StripeUserError(404, f"No such {kind}: '{object_id}'", param="id")
    return table[object_id]


def _error(exc: StripeUserError) -> web.Response:
    body = {"error": {"type": exc.kind, "message": exc.message, "param": exc.param}}
    return web.Response(body=orjson.dumps(body), status=exc.status, content_type="application/json")
