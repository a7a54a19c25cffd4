"""The report behind the gateway's `GET /v1/usage`: the calling key's consumer's usage this month (UTC) by
model and token type, and every budget on the key, its consumer or a customer that pays for it, with what its
window has used, holds and has left. Usage is metered per consumer (a subject), so keys of one consumer share it.
Numbers are decimal strings."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tollway.billing.catalog.customer_service import CustomerService
from tollway.clock import Clock
from tollway.dashboard.reports import BudgetStatusOf, totals_of
from tollway.identity.service import IdentityService
from tollway.metering.aggregation import MeterQuery
from tollway.metering.events import format_time
from tollway.metering.service import MeteringService
from tollway.money import decimal_text
from tollway.spend.budgets_service import BudgetService


class KeyUsageReport:
    def __init__(
        self,
        metering: MeteringService,
        identity: IdentityService,
        customers: CustomerService,
        clock: Clock,
        budgets: BudgetService | None = None,
        budget_status: BudgetStatusOf | None = None,
    ) -> None:
        self._metering = metering
        self._identity = identity
        self._customers = customers
        self._clock = clock
        self._budgets = budgets
        self._status = budget_status

    async def __call__(self, username: str, presented: bytes) -> dict[str, Any]:
        now = self._clock.now()
        start = datetime(now.year, now.month, 1, tzinfo=UTC)
        query = MeterQuery(start=start, end=now, subjects=(username,), group_by=("type", "model"))
        digest = "sha256:" + hashlib.sha256(presented).hexdigest()
        rows, requests, keys, customers = await asyncio.gather(
            self._metering.query("llm_tokens", query),
            self._metering.query("llm_requests", MeterQuery(start=start, end=now, subjects=(username,))),
            self._identity.keys(username),
            self._customers.customers(),
        )
        key = next((k for k in keys if k.digest == digest), None)
        totals = totals_of(rows)
        by_model: dict[str, dict[str, str]] = {}
        for row in rows:
            model = by_model.setdefault(row.group_by.get("model") or "unknown", {})
            kind = row.group_by.get("type") or "unknown"
            model[kind] = decimal_text(Decimal(model.get(kind, "0")) + row.value)
        payers = [c.key for c in customers if username in c.subjects]
        return {
            "object": "usage",
            "consumer": username,
            "key": None if key is None else {"id": key.id, "name": key.name, "prefix": key.prefix},
            "from": format_time(start),
            "to": format_time(now),
            "requests": decimal_text(sum((r.value for r in requests), Decimal(0))),
            "tokens": {kind: decimal_text(value) for kind, value in sorted(totals.by_type.items())},
            "totalTokens": decimal_text(totals.total),
            "byModel": by_model,
            "budgets": await self._budget_list(username, key.id if key is not None else None, payers),
        }

    async def _budget_list(self, username: str, key_id: str | None, payers: list[str]) -> list[dict[str, Any]]:
        if self._budgets is None or self._status is None:
            return []
        wanted = {("consumer", username), *(("customer", c) for c in payers)}
        if key_id is not None:
            wanted.add(("key", key_id))
        found = []
        for budget in await self._budgets.all():
            if (budget.scope, budget.target) not in wanted:
                continue
            status = await self._status(budget)
            found.append(
                {
                    "key": budget.key,
                    "scope": budget.scope,
                    "kind": budget.kind,
                    "window": budget.window,
                    "hard": budget.hard,
                    "limit": decimal_text(budget.limit),
                    "currency": status.currency if budget.kind == "money" else None,
                    "used": decimal_text(status.used),
                    "reserved": decimal_text(status.reserved),
                    "remaining": decimal_text(status.remaining),
                    "resetsAt": format_time(status.resets_at) if status.resets_at is not None else None,
                }
            )
        return found
