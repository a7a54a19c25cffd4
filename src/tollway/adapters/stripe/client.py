"""The Stripe calls Tollway makes, through the official SDK's StripeClient (async methods).

Every call that creates something carries an idempotency key derived from Tollway's ids, so a retry after a
crash or a lost reply gets Stripe's stored answer instead of a second object. Library exceptions are mapped
here to domain errors: connection failures, rate limits and 5xx -> UnavailableError (retry later); an
idempotency key reused with other parameters -> ConflictError; any other 4xx -> ValidationError.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import stripe

from tollway.errors import ConflictError, DomainError, UnavailableError, ValidationError

T = TypeVar("T")
DEFAULT_API_BASE = "https://api.stripe.com"


@dataclass(frozen=True)
class StripeCustomerParams:
    name: str
    email: str | None = None
    address: dict[str, str] = field(default_factory=dict)  # Stripe's address keys: line1, city, country ...
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StripeInvoiceParams:
    customer: str  # cus_...
    currency: str  # lower-case ISO 4217
    description: str
    number: str | None
    metadata: dict[str, str]


@dataclass(frozen=True)
class StripeItemParams:
    customer: str
    invoice: str  # in_...: the item goes on that draft invoice, never on the customer's pending items
    amount: int  # minor units, may be negative (a credit)
    currency: str
    description: str
    period_start: int  # unix seconds
    period_end: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class StripeInvoiceState:
    id: str
    status: str  # draft | open | paid | void | uncollectible
    number: str | None = None


@dataclass(frozen=True)
class StripeItem:
    id: str
    amount: int
    metadata: dict[str, str]


class StripeApi:
    """The Stripe endpoints invoice sync needs. One instance per process; `close` releases its HTTP session."""

    def __init__(
        self, secret_key: str, *, api_base: str = DEFAULT_API_BASE, timeout_s: float = 30.0, max_retries: int = 0
    ) -> None:
        self._http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=timeout_s))
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base.rstrip("/")},
            http_client=self._http,
            max_network_retries=max_retries,
        )

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def create_customer(self, params: StripeCustomerParams, *, idempotency_key: str) -> str:
        body: dict[str, Any] = {"name": params.name, "metadata": params.metadata}
        if params.email:
            body["email"] = params.email
        if params.address:
            body["address"] = params.address
        customer = await _call(
            lambda: self._client.v1.customers.create_async(
                params=body,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )
        return str(customer.id)

    async def create_invoice(self, params: StripeInvoiceParams, *, idempotency_key: str) -> StripeInvoiceState:
        body: dict[str, Any] = {
            "customer": params.customer,
            "currency": params.currency,
            "description": params.description,
            "metadata": params.metadata,
            "auto_advance": False,  # finalized by us once every item is on it
            "collection_method": "charge_automatically",
            "pending_invoice_items_behavior": "exclude",
        }
        if params.number:
            body["number"] = params.number
        invoice = await _call(
            lambda: self._client.v1.invoices.create_async(
                params=body,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )
        return _invoice_state(invoice)

    async def retrieve_invoice(self, invoice_id: str) -> StripeInvoiceState:
        invoice = await _call(lambda: self._client.v1.invoices.retrieve_async(invoice_id))
        return _invoice_state(invoice)

    async def create_item(self, params: StripeItemParams, *, idempotency_key: str) -> str:
        body: dict[str, Any] = {
            "customer": params.customer,
            "invoice": params.invoice,
            "amount": params.amount,
            "currency": params.currency,
            "description": params.description,
            "period": {"start": params.period_start, "end": params.period_end},
            "metadata": params.metadata,
        }
        item = await _call(
            lambda: self._client.v1.invoice_items.create_async(
                params=body,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )
        return str(item.id)

    async def invoice_items(self, invoice_id: str) -> list[StripeItem]:
        """Every invoice item on the invoice (all pages)."""
        items: list[StripeItem] = []
        starting_after: str | None = None
        while True:
            query: dict[str, Any] = {"invoice": invoice_id, "limit": 100}
            if starting_after:
                query["starting_after"] = starting_after
            page = await _call(
                lambda q=query: self._client.v1.invoice_items.list_async(params=q)  # type: ignore[misc]
            )
            for item in page.data:
                raw: Any = item.metadata.to_dict() if item.metadata else {}
                metadata = {str(k): str(v) for k, v in raw.items()}
                items.append(StripeItem(id=str(item.id), amount=int(item.amount), metadata=metadata))
            if not page.has_more or not page.data:
                return items
            starting_after = str(page.data[-1].id)

    async def finalize_invoice(self, invoice_id: str, *, idempotency_key: str) -> StripeInvoiceState:
        invoice = await _call(
            lambda: self._client.v1.invoices.finalize_invoice_async(
                invoice_id,
                params={"auto_advance": True},  # Stripe collects it from here
                options={"idempotency_key": idempotency_key},
            )
        )
        return _invoice_state(invoice)

    async def void_invoice(self, invoice_id: str, *, idempotency_key: str) -> StripeInvoiceState:
        invoice = await _call(
            lambda: self._client.v1.invoices.void_invoice_async(
                invoice_id, options={"idempotency_key": idempotency_key}
            )
        )
        return _invoice_state(invoice)

    async def pay_out_of_band(self, invoice_id: str, *, idempotency_key: str) -> StripeInvoiceState:
        """Mark an open (or uncollectible) invoice paid outside Stripe: Stripe charges nothing for it."""
        invoice = await _call(
            lambda: self._client.v1.invoices.pay_async(
                invoice_id, params={"paid_out_of_band": True}, options={"idempotency_key": idempotency_key}
            )
        )
        return _invoice_state(invoice)

    async def mark_uncollectible(self, invoice_id: str, *, idempotency_key: str) -> StripeInvoiceState:
        """An open invoice Stripe stops collecting."""
        invoice = await _call(
            lambda: self._client.v1.invoices.mark_uncollectible_async(
                invoice_id, options={"idempotency_key": idempotency_key}
            )
        )
        return _invoice_state(invoice)

    async def delete_draft(self, invoice_id: str) -> None:
        """Delete a draft invoice (Stripe voids only finalized ones)."""
        await _call(lambda: self._client.v1.invoices.delete_async(invoice_id))


def _invoice_state(invoice: Any) -> StripeInvoiceState:
    number = getattr(invoice, "number", None)
    return StripeInvoiceState(id=str(invoice.id), status=str(invoice.status), number=str(number) if number else None)


async def _call(request: Callable[[], Awaitable[T]]) -> T:
    try:
        return await request()
    except stripe.StripeError as exc:
        raise map_stripe_error(exc) from exc


def map_stripe_error(exc: stripe.StripeError) -> DomainError:
    """The domain error for a library exception (the caller decides whether to retry)."""
    message = f"Stripe: {exc.user_message or exc.__class__.__name__}"
    status = exc.http_status
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return UnavailableError(message)
    if status is None or status == 429 or status >= 500:
        return UnavailableError(message)
    if isinstance(exc, stripe.IdempotencyError):
        return ConflictError(message, field="Idempotency-Key")
    return ValidationError(message, field=getattr(exc, "param", None))


def idempotency_key(*parts: str) -> str:
    """Stripe keys are at most 255 characters; Tollway ids are short, so the parts are joined as they are."""
    return "tollway:" + ":".join(parts)


def stripe_metadata(values: Mapping[str, str | None]) -> dict[str, str]:
    """Stripe metadata values are strings (at most 500 characters); absent ones are left out."""
    return {key: value[:500] for key, value in values.items() if value}
