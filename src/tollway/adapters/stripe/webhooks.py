"""Stripe webhooks: verify the `Stripe-Signature` header, then apply invoice events to Tollway's invoices.

Signature: the header holds `t=<unix time>` and one or more `v1=<hex>`; v1 is HMAC-SHA256 of "{t}.{payload}"
keyed with the endpoint's signing secret. The timestamp must be within the tolerance (300 s) of now, in
either direction, so a captured request cannot be replayed later and a forged future one is refused.

Events (the Tollway invoice is named by the `tollway_invoice_id` metadata the sync put on the Stripe invoice):
invoice.paid -> paid, invoice.voided -> void, invoice.marked_uncollectible -> uncollectible;
invoice.payment_failed only records Stripe's status (Stripe retries the payment; a failed attempt is not final).
What each does to the invoice is billing's (tollway.billing.invoicing.collection); this module reads Stripe's
event into a PaymentEvent. Each event id is recorded once it is applied: a replay is answered as a duplicate and
changes nothing. An event that names no Tollway invoice, or asks for a transition the lifecycle refuses, is
acknowledged and ignored (Stripe would otherwise resend it for days).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson

from tollway.billing.invoicing.collection import (
    CollectionStore,
    InvoiceCollection,
    PaymentEvent,
    PaymentEventKind,
    PaymentFailed,
    WebhookOutcome,
)
from tollway.clock import Clock
from tollway.errors import ValidationError

log = logging.getLogger("tollway.stripe")
TOLERANCE_S: Final = 300
SIGNATURE_HEADER: Final = "Stripe-Signature"
# Stripe's event type -> what it means for the invoice, and the status_transitions stamp saying when it happened
KINDS: Final[dict[str, tuple[PaymentEventKind, str | None]]] = {
    "invoice.paid": ("paid", "paid_at"),
    "invoice.voided": ("void", "voided_at"),
    "invoice.marked_uncollectible": ("uncollectible", "marked_uncollectible_at"),
    "invoice.payment_failed": ("payment_failed", None),
}


class WebhookStore(CollectionStore, Protocol):
    """The part of the InvoiceStore port webhooks use."""

    async def record_webhook_event(self, event_id: str, *, received_at: datetime) -> bool: ...


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
        self._collection = InvoiceCollection(store, notify=notify, payment_failed=payment_failed)

    @property
    def on_paid(self) -> Callable[[str], Awaitable[object]] | None:
        """Called with the invoice id when an event marks it paid (e.g. a bought credit grant becomes active)."""
        return self._collection.on_paid

    @on_paid.setter
    def on_paid(self, hook: Callable[[str], Awaitable[object]] | None) -> None:
        self._collection.on_paid = hook

    @property
    def on_void(self) -> Callable[[str], Awaitable[object]] | None:
        """Called with the invoice id when an event voids it (e.g. the credits it consumed come back)."""
        return self._collection.on_void

    @on_void.setter
    def on_void(self, hook: Callable[[str], Awaitable[object]] | None) -> None:
        self._collection.on_void = hook

    async def receive(self, payload: bytes, signature: str | None) -> WebhookOutcome:
        """Verify, apply, record. Raises ValidationError (nothing applied) for a bad signature or body."""
        now = self._clock.now()
        verify_signature(payload, signature, self._secret, now=now, tolerance_s=self._tolerance_s)
        event = _event(*_parse(payload))
        action, invoice_id = await self._collection.apply(event, now)
        event_id, event_type = event.id, event.type
        fresh = await self._store.record_webhook_event(event_id, received_at=now)
        if fresh:
            log.info("stripe webhook %s %s: %s", event_id, event_type, action)
        return WebhookOutcome(event_id, event_type, duplicate=not fresh, action=action, invoice_id=invoice_id)


def _event(event_id: str, event_type: str, obj: dict[str, Any]) -> PaymentEvent:
    """A Stripe event as billing reads it."""
    metadata = obj.get("metadata")
    invoice_id = metadata.get("tollway_invoice_id") if isinstance(metadata, dict) else None
    status = obj.get("status")
    kind, stamp = KINDS.get(event_type, (None, None))
    return PaymentEvent(
        id=event_id,
        type=event_type,
        about_invoice=event_type.startswith("invoice."),
        kind=kind,
        invoice_id=invoice_id if isinstance(invoice_id, str) else None,
        provider_invoice_id=obj.get("id"),
        provider_status=status if isinstance(status, str) else None,
        at=_transition_time(obj, stamp) if stamp is not None else None,
    )


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
