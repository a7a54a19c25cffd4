"""Sample payload data per event type: what `POST /notification/rules/{id}/test` sends (with `"test": true`),
and the examples docs/notifications.md shows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tollway.notifications.model import (
    BALANCE_THRESHOLD,
    BUDGET_EXCEEDED,
    BUDGET_THRESHOLD,
    CREDITS_BALANCE_LOW,
    CREDITS_EXPIRING,
    CREDITS_TOPUP,
    ENTITLEMENT_RESET,
    INVOICE_CREATED,
    INVOICE_PAID,
    INVOICE_PAYMENT_FAILED,
    INVOICE_UPDATED,
    SUBSCRIPTION_CANCELED,
    SUBSCRIPTION_CHANGED,
    SUBSCRIPTION_CREATED,
)
from tollway.notifications.wire import rfc3339


def _entitlement(now: datetime) -> dict[str, Any]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return {
        "entitlement": {
            "id": "01JSUBSCRIPTION00000000000/output-tokens",
            "type": "metered",
            "featureKey": "output-tokens",
            "featureId": "01JFEATURE0000000000000000",
            "subjectKey": "acme-corp",
            "isSoftLimit": False,
            "issueAfterReset": "5000000",
            "usagePeriod": {"interval": "P1M", "anchor": rfc3339(start)},
            "currentUsagePeriod": {"from": rfc3339(start), "to": rfc3339(start + timedelta(days=31))},
            "lastReset": rfc3339(start),
            "measureUsageFrom": rfc3339(start),
        },
        "feature": {"id": "01JFEATURE0000000000000000", "key": "output-tokens", "name": "Output tokens"},
        "subject": {"key": "acme-corp"},
        "customer": {"id": "01JCUSTOMER000000000000000", "key": "acme", "name": "Acme Corp"},
        "value": {"hasAccess": True, "balance": "1000000", "usage": "4000000", "overage": "0", "config": None},
    }


def _invoice(now: datetime, status: str) -> dict[str, Any]:
    return {
        "id": "01JINVOICE0000000000000000",
        "number": "TW-2026-000014",
        "status": status,
        "customerId": "01JCUSTOMER000000000000000",
        "currency": "USD",
        "total": "49.00",
        "issuedAt": rfc3339(now),
    }


def _budget(now: datetime) -> dict[str, Any]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return {
        "budget": {
            "id": "01JBUDGET00000000000000000",
            "key": "acme-monthly",
            "name": "Acme monthly",
            "scope": "customer",
            "target": "acme",
            "kind": "money",
            "limit": "50",
            "window": "month",
            "hard": True,
            "currency": "USD",
            "windowStart": rfc3339(start),
            "resetsAt": rfc3339(start + timedelta(days=31)),
        },
        "value": {"usage": "41.5", "limit": "50", "balance": "8.5", "percent": "83"},
    }


def _grant(now: datetime) -> dict[str, Any]:
    return {
        "customer": {"id": "01JCUSTOMER000000000000000", "key": "acme", "name": "Acme Corp"},
        "grant": {
            "id": "01JGRANT000000000000000000",
            "customerId": "01JCUSTOMER000000000000000",
            "name": "Top-up",
            "amount": "20",
            "currency": "USD",
            "fundingMethod": "external",
            "effectiveAt": rfc3339(now),
            "expiresAt": rfc3339(now + timedelta(days=30)),
            "status": "active",
        },
        "balance": "20",
    }


def sample_data(event_type: str, now: datetime) -> dict[str, Any]:
    data: dict[str, Any]
    if event_type == BALANCE_THRESHOLD:
        data = {**_entitlement(now), "threshold": {"value": 80, "type": "PERCENT"}}
    elif event_type == BUDGET_THRESHOLD:
        data = {**_budget(now), "threshold": {"value": 80, "type": "PERCENT"}}
    elif event_type == BUDGET_EXCEEDED:
        data = {**_budget(now), "cause": "used"}
    elif event_type == CREDITS_TOPUP:
        data = _grant(now)
    elif event_type == CREDITS_EXPIRING:
        data = {**_grant(now), "expiresAt": rfc3339(now + timedelta(days=30)), "daysBefore": 7}
    elif event_type == CREDITS_BALANCE_LOW:
        data = {
            "customer": {"id": "01JCUSTOMER000000000000000", "key": "acme", "name": "Acme Corp"},
            "balance": {"currency": "USD", "live": "4.2", "settled": "16", "pending": "0", "grants": []},
            "threshold": {"value": 5, "type": "NUMBER", "currency": "USD"},
        }
    elif event_type == ENTITLEMENT_RESET:
        data = _entitlement(now)
    elif event_type in (INVOICE_CREATED, INVOICE_UPDATED, INVOICE_PAID, INVOICE_PAYMENT_FAILED):
        status = {INVOICE_PAID: "paid", INVOICE_UPDATED: "void"}.get(event_type, "issued")
        data = _invoice(now, status)
    elif event_type in (SUBSCRIPTION_CREATED, SUBSCRIPTION_CHANGED, SUBSCRIPTION_CANCELED):
        data = {"id": "01JSUBSCRIPTION00000000000", "customerId": "01JCUSTOMER000000000000000", "plan": {"key": "pro"}}
    else:
        data = {}
    return {**data, "test": True}
