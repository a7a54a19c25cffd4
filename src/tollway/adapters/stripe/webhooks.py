"""Stripe webhooks: verify the `Stripe-Signature` header, then apply invoice events to Tollway's invoices.

Signature: the header holds `t=<unix time>` and one or more `v1=<hex>`; v1 is HMAC-SHA256 of "{t}.{payload}"
keyed with the endpoint's signing secret. The timestamp must be within the tolerance (300 s) of now, in
either direction, so a captured request cannot be replayed later and a forged future one is refused.

Events (the Tollway invoice is named by the `tollway_invoice_id` metadata the sync put on the Stripe invoice):
invoice.paid -> paid, invoice.voided -> void, invoice.marked_uncollectible -> uncollectible;
invoice.payment_failed only records Stripe's status (Stripe retries the payment; a failed attempt is not final).
Applying an event is idempotent (a transition to the status an invoice has is a no-op), and each event id is
recorded once it is applied: a replay is answered as a duplicate and changes nothing. An event that names no
Tollway invoice, or asks for a transition the lifecycle refuses, is acknowledged and ignored (Stripe would
otherwise resend it for days).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson

from tollway.billing.invoicing.model import Invoice, InvoiceStatus
from tollway.billing.invoicing.ports import notify_kinds
from tollway.clock import Clock
from tollway.errors import ConflictError, ValidationError

log = logging.getLogger("tollway.stripe")
TOLERANCE_S: Final = 300
SIGNATURE_HEADER: Final = "Stripe-Signature"
TRANSITIONS: Final[dict[str, tuple[InvoiceStatus, str]]] = {
    "invoice.paid": ("paid", "paid_at"),
    "invoice.voided": ("void", "voided_at"),
    "invoice.marked_uncollectible": ("uncollectible", "marked_uncollectible_at"),
}


class WebhookStore(Protocol):
    """The part of the InvoiceStore port webhooks use."""

    async def get_invoice(self, invoice_id: str) -> Invoice | None: ...

    async def set_status(
        self, invoice_id: str, status: InvoiceStatus, *, at: datetime, enqueue: Sequence[str] = ()
    ) -> Invoice: ...

    async def record_stripe_ids(
        self,
        invoice_id: str,
        *,
        stripe_invoice_id: str | None = None,
        stripe_status: str | None = None,
        line_item_ids: Mapping[str, str] | None = None,
    ) -> Invoice: ...

    async def record_webhook_event(self, event_id: str, *, received_at: datetime) -> bool: ...


@dataclass(frozen=True)
class WebhookOutcome:
    event_id: str
    type: str
    duplicate: bool
    action: str  # "paid", "void", "uncollectible", "recorded", or "ignored: <why>"
    invoice_id: str | None = None


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The v1 signature of a payload (what Stripe computes)."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(
    payload: bytes, header: str | None, secret: str, *, now: datetime, tolerance_s: int = TOLERANCE_S
) -> int:
    """The signed timestamp, or ValidationError (field Stripe-Signature) saying what is wrong."""
    if not header:
        raise ValidationError("missing Stripe-Signature header", field=SIGNATURE_HEADER)
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise ValidationError("Stripe-Signature: t is not a unix time", field=SIGNATURE_HEADER) from None
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise ValidationError("Stripe-Signature must carry t=... and v1=...", field=SIGNATURE_HEADER)
    skew = now.timestamp() - timestamp
    if abs(skew) > tolerance_s:
        when = "old" if skew > 0 else "far in the future"
        raise ValidationError(
            f"Stripe-Signature timestamp is too {when} ({abs(int(skew))} s off; tolerance {tolerance_s} s)",
            field=SIGNATURE_HEADER,
        )
    expected = sign(payload, secret, timestamp)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise ValidationError("Stripe-Signature does not match the payload and secret", field=SIGNATURE_HEADER)
    return timestamp


PaymentFailed = Callable[[Invoice, str], Awaitable[object]]  # (the invoice, the Stripe event id)


class StripeWebhooks:
    def __init__(
        self,
        *,
        secret: str,
        store: WebhookStore,
        clock: Clock,
        tolerance_s: int = TOLERANCE_S,
        notify: bool = False,
        payment_failed: PaymentFailed | None = None,
    ) -> None:
        self._secret = secret
        self._store = store
        self._clock = clock
        self._tolerance_s = tolerance_s
        self._notify = notify  # status changes enqueue their notification rows (invoice.updated, invoice.paid)
        self._payment_failed = payment_failed  # notifies invoice.payment_failed (deduplicated on the event id)
        self.on_paid: Callable[[str], Awaitable[object]] | None = None  # e.g. a bought credit grant becomes active
        self.on_void: Callable[[str], Awaitable[object]] | None = None  # e.g. the credits it consumed come back

    async def receive(self, payload: bytes, signature: str | None) -> WebhookOutcome:
        """Verify, apply, record. Raises ValidationError (nothing applied) for a bad signature or body."""
        now = self._clock.now()
        verify_signature(payload, signature, self._secret, now=now, tolerance_s=self._tolerance_s)
        event_id, event_type, obj = _parse(payload)
        action, invoice_id = await self._apply(event_id, event_type, obj, now)
        fresh = await self._store.record_webhook_event(event_id, received_at=now)
        if fresh:
            log.info("stripe webhook %s %s: %s", event_id, event_type, action)
        return WebhookOutcome(event_id, event_type, duplicate=not fresh, action=action, invoice_id=invoice_id)

    async def _apply(
        self, event_id: str, event_type: str, obj: dict[str, Any], now: datetime
    ) -> tuple[str, str | None]:
        if not event_type.startswith("invoice."):
            return f"ignored: {event_type} is not handled", None
        metadata = obj.get("metadata")
        invoice_id = metadata.get("tollway_invoice_id") if isinstance(metadata, dict) else None
        if not isinstance(invoice_id, str):
            return "ignored: not a Tollway invoice (no tollway_invoice_id metadata)", None
        invoice = await self._store.get_invoice(invoice_id)
        if invoice is None:
            return f"ignored: invoice {invoice_id} does not exist", invoice_id
        stripe_id = obj.get("id")
        if invoice.stripe_invoice_id is not None and stripe_id != invoice.stripe_invoice_id:
            return f"ignored: invoice {invoice_id} is Stripe invoice {invoice.stripe_invoice_id}", invoice_id
        stripe_status = obj.get("status")
        if event_type == "invoice.payment_failed":
            if isinstance(stripe_status, str):
                invoice = await self._store.record_stripe_ids(invoice_id, stripe_status=stripe_status)
            if self._payment_failed is not None:
                await self._payment_failed(invoice, event_id)
            return "recorded", invoice_id
        transition = TRANSITIONS.get(event_type)
        if transition is None:
            return f"ignored: {event_type} is not handled", invoice_id
        status, stamp = transition
        try:
            enqueue = notify_kinds(status) if self._notify else ()
            await self._store.set_status(invoice_id, status, at=_transition_time(obj, stamp) or now, enqueue=enqueue)
        except ConflictError as exc:
            log.warning("stripe webhook %s for invoice %s refused: %s", event_type, invoice_id, exc.message)
            return f"ignored: {exc.message}", invoice_id
        if isinstance(stripe_status, str):
            await self._store.record_stripe_ids(invoice_id, stripe_status=stripe_status)
        if status == "paid" and self.on_paid is not None:
            await self.on_paid(invoice_id)
        if status == "void" and self.on_void is not None:
            await self.on_void(invoice_id)
        return status, invoice_id


def _parse(payload: bytes) -> tuple[str, str, dict[str, Any]]:
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise ValidationError("the webhook body is not JSON", field="body") from None
    if not isinstance(event, dict):
        raise ValidationError("the webhook body must be a Stripe event object", field="body")
    event_id, event_type = event.get("id"), event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(event_id, str) or not event_id:
        raise ValidationError("the event has no id", field="id")
    if not isinstance(event_type, str) or not event_type:
        raise ValidationError("the event has no type", field="type")
    if not isinstance(obj, dict):
        raise ValidationError("the event has no data.object", field="data.object")
    return event_id, event_type, obj


def _transition_time(obj: Mapping[str, Any], stamp: str) -> datetime | None:
    transitions = obj.get("status_transitions")
    value = transitions.get(stamp) if isinstance(transitions, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None
