"""CreditEvents: money credit events, found off the request path (a step of the notification worker, every
round) from the credit ledger (tollway.billing.credits and credit_accounts: grants, their ledger balances and
the live balance the API shows), each under a store mark so that it is stored once however many workers look:

- credits.topup: a bought grant (funding `invoice` or `external`) became active (its `funded` ledger row),
  once per rule and grant; only grants funded after the rule was created.
- credits.expiring: an active grant with credit left expires within N days, for each N of the rule's
  thresholds (`NUMBER`, days; none: 7), once per rule, grant and N.
- credits.balance.low: the customer's live balance in a currency is below a rule's threshold (`NUMBER` or
  `balance_value`, in that currency), once per crossing: the mark's period is the latest funding of the
  customer's grants in that currency, so a top-up (or any grant becoming active) re-arms it, and a balance
  still below after it is reported again, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tollway.billing.catalog.customer_service import CustomerService
from tollway.billing.credit_accounts.service import CreditService
from tollway.billing.credits.model import CreditGrant, GrantBalance
from tollway.billing.customers import Customer
from tollway.clock import Clock
from tollway.errors import DomainError
from tollway.money import decimal_text, from_minor_units
from tollway.notifications.model import (
    CREDITS_BALANCE_LOW,
    CREDITS_EXPIRING,
    CREDITS_TOPUP,
    Rule,
    Threshold,
    ThresholdMark,
)
from tollway.notifications.service import NotificationService
from tollway.notifications.shapes import Shapes
from tollway.notifications.wire import number, rfc3339

DEFAULT_EXPIRING_DAYS = Decimal(7)
TOPUP_FUNDING = frozenset({"invoice", "external"})
MAX_KNOWN = 100_000


class CreditEvents:
    def __init__(
        self,
        service: NotificationService,
        credits: CreditService,
        customers: CustomerService,
        shapes: Shapes,
        clock: Clock,
    ) -> None:
        self._service = service
        self._credits = credits
        self._customers = customers
        self._shapes = shapes
        self._clock = clock
        self._known: set[ThresholdMark] = set()

    async def run_once(self) -> int:
        """One round; returns how many events it stored."""
        low = await self._service.active_rules(CREDITS_BALANCE_LOW)
        expiring = await self._service.active_rules(CREDITS_EXPIRING)
        topup = await self._service.active_rules(CREDITS_TOPUP)
        if not (low or expiring or topup):
            return 0
        now = self._clock.now()
        stored = 0
        for customer in await self._customers.customers():
            balances = await self._credits.store.balances(customer.id)
            if not balances:
                continue
            funded = {
                row.grant_id: row.at
                for row in await self._credits.store.list_transactions(customer.id)
                if row.kind == "funded"
            }
            for balance in balances:
                stored += await self._topup(topup, customer, balance, funded.get(balance.grant.id))
                stored += await self._expiring(expiring, customer, balance, now)
            if low:
                stored += await self._low(low, customer, balances, funded)
        if len(self._known) > MAX_KNOWN:
            self._known.clear()
        return stored

    async def _topup(
        self, rules: Sequence[Rule], customer: Customer, balance: GrantBalance, funded_at: datetime | None
    ) -> int:
        grant = balance.grant
        if funded_at is None or grant.funding_method not in TOPUP_FUNDING:
            return 0
        stored = 0
        for rule in rules:
            if funded_at < rule.created_at:
                continue
            mark = ThresholdMark(rule.id, _target(customer), f"topup:{grant.id}", funded_at)
            data = {**self._about(customer, grant), "balance": _money(balance.balance_minor, grant.currency)}
            stored += await self._fire(rule, CREDITS_TOPUP, customer, mark, data)
        return stored

    async def _expiring(self, rules: Sequence[Rule], customer: Customer, balance: GrantBalance, now: datetime) -> int:
        grant = balance.grant
        if grant.status != "active" or grant.expires_at is None or balance.balance_minor <= 0:
            return 0
        if now >= grant.expires_at:
            return 0
        stored = 0
        for rule in rules:
            for days in _days(rule.thresholds):
                if now < grant.expires_at - timedelta(days=float(days)):
                    continue
                mark = ThresholdMark(rule.id, _target(customer), f"expiring:{grant.id}:{days}", grant.expires_at)
                data = {
                    **self._about(customer, grant),
                    "balance": _money(balance.balance_minor, grant.currency),
                    "expiresAt": rfc3339(grant.expires_at),
                    "daysBefore": number(days),
                }
                stored += await self._fire(rule, CREDITS_EXPIRING, customer, mark, data)
        return stored

    async def _low(
        self, rules: Sequence[Rule], customer: Customer, balances: Sequence[GrantBalance], funded: dict[str, datetime]
    ) -> int:
        stored = 0
        for currency in sorted({b.grant.currency for b in balances}):
            epochs = [funded[b.grant.id] for b in balances if b.grant.currency == currency and b.grant.id in funded]
            if not epochs:
                continue  # nothing funded in this currency yet: no balance to run low
            try:
                balance = await self._credits.balance(customer.id, currency)
            except DomainError:
                continue  # deleted meanwhile
            live = from_minor_units(balance.live_minor, currency)
            for rule in rules:
                for threshold in rule.thresholds:
                    if live >= threshold.value:
                        continue
                    key = f"low:{currency}:{threshold.key}"
                    mark = ThresholdMark(rule.id, _target(customer), key, max(epochs))
                    data = {
                        "customer": self._shapes.customer(customer),
                        "balance": self._shapes.credit_balance(balance),
                        "threshold": {"value": number(threshold.value), "type": threshold.type, "currency": currency},
                    }
                    stored += await self._fire(rule, CREDITS_BALANCE_LOW, customer, mark, data)
        return stored

    def _about(self, customer: Customer, grant: CreditGrant) -> dict[str, Any]:
        return {"customer": self._shapes.customer(customer), "grant": self._shapes.grant(grant)}

    async def _fire(
        self, rule: Rule, event_type: str, customer: Customer, mark: ThresholdMark, data: dict[str, Any]
    ) -> int:
        if mark in self._known:
            return 0
        if await self._service.store.has_mark(mark):
            self._known.add(mark)
            return 0
        subject = customer.subjects[0] if customer.subjects else None
        event = await self._service.record(rule, event_type, data, mark=mark, subject_key=subject)
        self._known.add(mark)
        return int(event is not None)


def _target(customer: Customer) -> str:
    return f"credits:{customer.id}"


def _days(thresholds: Sequence[Threshold]) -> list[Decimal]:
    return sorted({t.value for t in thresholds}) if thresholds else [DEFAULT_EXPIRING_DAYS]


def _money(minor: int, currency: str) -> str:
    return decimal_text(from_minor_units(minor, currency))
