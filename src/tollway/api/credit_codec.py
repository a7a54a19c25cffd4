"""Money credits on the wire: camelCase, amounts as decimal strings in the grant's currency, times RFC 3339."""

from __future__ import annotations

from typing import Any

from tollway.api.wire import Json, Obj, optional_time, parse_duration
from tollway.billing.credit_accounts.service import CreditBalance, NewGrant
from tollway.billing.credits.model import FUNDING_METHODS, CreditGrant, CreditTransaction
from tollway.metering.events import format_time
from tollway.money import decimal_text, from_minor_units

GRANT_FIELDS = (
    "name",
    "amount",
    "currency",
    "fundingMethod",
    "priority",
    "effectiveAt",
    "expiresAfter",
    "key",
    "filters",
    "price",
    "metadata",
)
MAX_FEATURES = 100


def _money(minor: int, currency: str) -> str:
    return decimal_text(from_minor_units(minor, currency))


def decode_grant(body: object) -> NewGrant:
    obj = Obj(body, "", GRANT_FIELDS)
    funding = obj.get("fundingMethod")
    if funding is None:
        funding = "none"
    if funding not in FUNDING_METHODS:
        raise obj.error("fundingMethod", f"must be one of {', '.join(FUNDING_METHODS)}, got {funding!r}")
    priority = obj.get("priority")
    if priority is None:
        priority = 1
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 255:
        raise obj.error("priority", f"must be an integer from 1 to 255, got {priority!r}")
    features: tuple[str, ...] | None = None
    filters = obj.obj("filters", {"features"})
    if filters is not None and filters.has("features"):
        listed = filters.strings("features")
        if not listed or len(listed) > MAX_FEATURES:
            raise filters.error("features", f"must list 1 to {MAX_FEATURES} feature keys (absent: every feature)")
        features = tuple(listed)
    expires = obj.text("expiresAfter")
    key = obj.text("key")
    if key is not None and len(key) > 255:
        raise obj.error("key", "must be at most 255 characters")
    name = obj.req_text("name")
    if len(name) > 255:
        raise obj.error("name", "must be at most 255 characters")
    return NewGrant(
        name=name,
        amount=obj.req_decimal("amount"),
        currency=obj.currency(),
        funding_method=funding,
        priority=priority,
        effective_at=obj.time("effectiveAt"),
        expires_after=None if expires is None else parse_duration(expires, "expiresAfter"),
        key=key,
        features=features,
        price=obj.decimal("price"),
        metadata=obj.metadata(),
    )


def grant_json(grant: CreditGrant) -> Json:
    return {
        "id": grant.id,
        "customerId": grant.customer_id,
        "name": grant.name,
        "amount": _money(grant.amount_minor, grant.currency),
        "currency": grant.currency,
        "fundingMethod": grant.funding_method,
        "priority": grant.priority,
        "effectiveAt": format_time(grant.effective_at),
        "expiresAfter": grant.expires_after,
        "expiresAt": optional_time(grant.expires_at),
        "key": grant.key,
        "filters": {"features": list(grant.features) if grant.features is not None else None},
        "price": _money(grant.price_minor, grant.currency) if grant.price_minor is not None else None,
        "invoiceId": grant.invoice_id,
        "status": grant.status,
        "metadata": grant.metadata,
        "createdAt": format_time(grant.created_at),
        "voidedAt": optional_time(grant.voided_at),
        "expiredAt": optional_time(grant.expired_at),
    }


def transaction_json(row: CreditTransaction) -> Json:
    return {
        "id": row.id,
        "grantId": row.grant_id,
        "type": row.kind,
        "amount": _money(row.amount_minor, row.currency),
        "currency": row.currency,
        "balanceBefore": _money(row.balance_before_minor, row.currency),
        "balanceAfter": _money(row.balance_after_minor, row.currency),
        "at": format_time(row.at),
        "invoiceId": row.invoice_id,
        "invoiceLineId": row.invoice_line_id,
    }


def balance_json(balance: CreditBalance) -> Json:
    c = balance.currency
    grants: list[dict[str, Any]] = [
        {"grantId": b.grant.id, "name": b.grant.name, "status": b.grant.status, "balance": _money(b.balance_minor, c)}
        for b in balance.grants
    ]
    return {
        "currency": c,
        "live": _money(balance.live_minor, c),
        "settled": _money(balance.settled_minor, c),
        "pending": _money(balance.pending_minor, c),
        "grants": grants,
    }
