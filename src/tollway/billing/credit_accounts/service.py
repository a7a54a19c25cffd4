"""CreditService: money credit use cases behind the API, the CLI and the config — grants (create with an
idempotency key, void), the balance (live / settled / pending) and the ledger. Expiry of what is left of a
grant is written by `expire_due`, which the period closer runs after it made the invoices due."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tollway.billing.credit_accounts.topups import BEFORE_PAYMENT, TopUps
from tollway.billing.credits.model import CreditGrant, CreditTransaction, FundingMethod, GrantBalance, RechargeRule
from tollway.billing.credits.ports import CreditStore
from tollway.billing.customers import Customer
from tollway.billing.invoicing.preview import InvoicePreview
from tollway.billing.periods import add_cadence, parse_cadence
from tollway.billing.ports import CatalogStore
from tollway.clock import Clock
from tollway.errors import ConflictError, NotFoundError, ValidationError
from tollway.ids import new_id
from tollway.money import currency_exponent, decimal_text, from_minor_units, to_minor_units

MAX_AMOUNT = Decimal(10) ** 15
PREPAID_ONLY = "prepaid_only"  # customer metadata: "true" -> the gateway refuses calls the credits cannot cover


@dataclass(frozen=True)
class NewGrant:
    name: str
    amount: Decimal
    currency: str | None = None  # default: the customer's currency
    funding_method: FundingMethod = "none"
    priority: int = 1
    effective_at: datetime | None = None  # default: now
    expires_after: str | None = None
    key: str | None = None
    features: tuple[str, ...] | None = None
    price: Decimal | None = None  # funding "invoice": what the top-up invoice charges (default: the amount)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CreditBalance:
    currency: str
    live_minor: int  # settled minus what the open period's usage so far would consume
    settled_minor: int  # active grants after issued invoices
    pending_minor: int  # bought, not yet paid
    grants: tuple[GrantBalance, ...]


def exact_minor(amount: Decimal, currency: str, name: str) -> int:
    """`amount` in minor units, refused (naming the field) when it is not exact in the currency's minor unit."""
    minor = to_minor_units(amount, currency)
    if from_minor_units(minor, currency) != amount:
        places = currency_exponent(currency)
        raise ValidationError(
            f"{name} must have at most {places} decimal places in {currency}, got {decimal_text(amount)}", field=name
        )
    return minor


class CreditService:
    def __init__(
        self,
        store: CreditStore,
        catalog: CatalogStore,
        clock: Clock,
        *,
        preview: InvoicePreview | None = None,
        topups: TopUps | None = None,
    ) -> None:
        self._topups = topups  # without it, a grant funded by invoice waits for an activation from outside
        self.on_change: Callable[[], Awaitable[None]] | None = None  # the gateway reads the balances again
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self._preview = preview

    @property
    def store(self) -> CreditStore:
        return self._store

    async def customer(self, id_or_key: str) -> Customer:
        found = await self._catalog.get_customer(id_or_key)
        if found is None or found.deleted_at is not None:
            raise NotFoundError(f"customer {id_or_key!r} not found", field="customerIdOrKey")
        return found

    async def _currency(self, customer: Customer, asked: str | None) -> str:
        if asked is not None:
            currency_exponent(asked)
            return asked
        if customer.currency:
            return customer.currency
        currencies = {s.currency for s in await self._catalog.list_subscriptions() if s.customer_id == customer.id}
        if len(currencies) == 1:
            return currencies.pop()
        raise ValidationError("currency is required (the customer has no currency of its own)", field="currency")

    async def create(self, customer_ref: str, new: NewGrant) -> tuple[CreditGrant, bool]:
        """(grant, created). A key already used by the customer with the same parameters answers the existing
        grant (created False); with other parameters, ConflictError naming `key`."""
        customer = await self.customer(customer_ref)
        if not new.name.strip():
            raise ValidationError("name must not be empty", field="name")
        if new.amount <= 0 or new.amount > MAX_AMOUNT:
            raise ValidationError("amount must be more than 0 and at most 10^15", field="amount")
        if not 1 <= new.priority <= 255:
            raise ValidationError(f"priority must be from 1 to 255, got {new.priority}", field="priority")
        currency = await self._currency(customer, new.currency)
        amount_minor = exact_minor(new.amount, currency, "amount")
        price_minor = None
        if new.price is not None:
            if new.funding_method != "invoice":
                raise ValidationError("price is only for a grant funded by invoice", field="price")
            if new.price < 0 or new.price > MAX_AMOUNT:
                raise ValidationError("price must be from 0 to 10^15", field="price")
            price_minor = exact_minor(new.price, currency, "price")
        now = self._clock.now()
        effective = new.effective_at or now
        expires_at = None
        if new.expires_after is not None:
            expires_at = add_cadence(effective, parse_cadence(new.expires_after, field="expiresAfter"), 1)
        grant = CreditGrant(
            id=new_id(now),
            customer_id=customer.id,
            name=new.name,
            amount_minor=amount_minor,
            currency=currency,
            funding_method=new.funding_method,
            priority=new.priority,
            effective_at=effective,
            status="pending" if new.funding_method == "invoice" and not _before_payment(customer) else "active",
            created_at=now,
            expires_after=new.expires_after,
            expires_at=expires_at,
            key=new.key,
            features=None if new.features is None else tuple(sorted(set(new.features))),
            price_minor=price_minor,
            invoice_id=new_id(now) if new.funding_method == "invoice" and self._topups is not None else None,
            metadata=dict(new.metadata),
        )
        stored, created = await self._store.create_grant(grant)
        if not created and not _same(stored, grant, explicit_effective=new.effective_at is not None):
            raise ConflictError(
                f"key {new.key!r} was already used by credit grant {stored.id} with other parameters", field="key"
            )
        if self._topups is not None and stored.invoice_id is not None:
            await self._topups.invoice(stored)  # a repeat (or a retry after a crash) stores nothing new
        if created:
            await self._changed()
        return stored, created

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()

    async def prepaid_balances(self) -> dict[str, Decimal]:
        """customer key -> settled credit balance, for the prepaid-only customers (metadata prepaid_only: "true" on
        the customer, or on the plan of its subscription running now): what the gateway holds their calls
        against."""
        now = self._clock.now()
        plans = {plan.id: plan for plan in await self._catalog.list_plans()}
        by_plan = {
            s.customer_id
            for s in await self._catalog.list_subscriptions()
            if s.active_from <= now
            and (s.active_to is None or now < s.active_to)
            and s.plan_id in plans
            and _flag(plans[s.plan_id].metadata, PREPAID_ONLY)
        }
        found: dict[str, Decimal] = {}
        for customer in await self._catalog.list_customers():
            if not _flag(customer.metadata, PREPAID_ONLY) and customer.id not in by_plan:
                continue
            try:
                balance = await self.balance(customer.id, live=False)
            except ValidationError:
                balance = None  # no currency yet: nothing granted, nothing to spend
            found[customer.key] = (
                Decimal(0) if balance is None else from_minor_units(balance.settled_minor, balance.currency)
            )
        return found

    async def restore_invoice(self, invoice_id: str) -> list[CreditTransaction]:
        """A voided invoice gives back the credits it consumed (to grants still active)."""
        made = await self._store.restore(invoice_id, at=self._clock.now())
        if made:
            await self._changed()
        return made

    async def settle_topups(self) -> list[CreditGrant]:
        """Bought grants whose invoice was paid become active."""
        activated = [] if self._topups is None else await self._topups.settle()
        if activated:
            await self._changed()
        return activated

    # -- auto-recharge -------------------------------------------------------------------------------

    async def set_recharge(
        self,
        customer_ref: str,
        *,
        threshold: Decimal,
        recharge_to: Decimal | None,
        amount: Decimal | None,
        currency: str | None = None,
    ) -> RechargeRule:
        customer = await self.customer(customer_ref)
        if (recharge_to is None) == (amount is None):
            raise ValidationError("give one of rechargeTo or amount", field="rechargeTo")
        code = await self._currency(customer, currency)
        threshold_minor = exact_minor(threshold, code, "threshold")
        to_minor = None if recharge_to is None else exact_minor(recharge_to, code, "rechargeTo")
        amount_minor = None if amount is None else exact_minor(amount, code, "amount")
        if to_minor is not None and to_minor <= threshold_minor:
            raise ValidationError("rechargeTo must be above the threshold", field="rechargeTo")
        if amount_minor is not None and amount_minor <= 0:
            raise ValidationError("amount must be more than 0", field="amount")
        rule = RechargeRule(customer.id, code, threshold_minor, to_minor, amount_minor)
        return await self._store.set_recharge(rule)

    async def recharge_rule(self, customer_ref: str) -> RechargeRule | None:
        return await self._store.get_recharge((await self.customer(customer_ref)).id)

    async def delete_recharge(self, customer_ref: str) -> None:
        await self._store.delete_recharge((await self.customer(customer_ref)).id)

    async def check_recharge(self, customer_ref: str) -> CreditGrant | None:
        """Below the threshold: one top-up per crossing (the database decides which caller takes it, and the
        grant key auto-recharge:<n> makes it once); back at or above it: armed again."""
        customer = await self.customer(customer_ref)
        rule = await self._store.get_recharge(customer.id)
        if rule is None:
            return None
        live = (await self.balance(customer.id, rule.currency)).live_minor
        if live >= rule.threshold_minor:
            await self._store.arm(customer.id)
            return None
        crossing = await self._store.disarm(customer.id)
        if crossing is None:
            return None  # this crossing was taken
        topup = rule.amount_minor if rule.amount_minor is not None else (rule.recharge_to_minor or 0) - live
        new = NewGrant(
            name=f"Auto-recharge #{crossing}",
            amount=from_minor_units(topup, rule.currency),
            currency=rule.currency,
            funding_method="invoice",
            key=f"auto-recharge:{crossing}",
        )
        grant, _ = await self.create(customer.id, new)
        return grant

    async def check_recharges(self) -> list[CreditGrant]:
        """Every customer with a rule (the billing worker's round)."""
        made = []
        for rule in await self._store.list_recharges():
            grant = await self.check_recharge(rule.customer_id)
            if grant is not None:
                made.append(grant)
        return made

    async def grants(self, customer_ref: str) -> list[CreditGrant]:
        customer = await self.customer(customer_ref)
        return await self._store.list_grants(customer.id)

    async def get(self, customer_ref: str, grant_id: str) -> CreditGrant:
        customer = await self.customer(customer_ref)
        grant = await self._store.get_grant(grant_id)
        if grant is None or grant.customer_id != customer.id:
            raise NotFoundError(f"credit grant {grant_id!r} not found", field="grantId")
        return grant

    async def void(self, customer_ref: str, grant_id: str) -> CreditGrant:
        grant = await self.get(customer_ref, grant_id)
        voided = await self._store.end(grant.id, "voided", at=self._clock.now())
        await self._changed()
        return voided

    async def activate(self, grant_id: str) -> CreditGrant:
        return await self._store.activate(grant_id, at=self._clock.now())

    async def transactions(self, customer_ref: str, *, grant_id: str | None = None) -> list[CreditTransaction]:
        customer = await self.customer(customer_ref)
        return await self._store.list_transactions(customer.id, grant_id=grant_id)

    async def balance(self, customer_ref: str, currency: str | None = None, *, live: bool = True) -> CreditBalance:
        customer = await self.customer(customer_ref)
        now = self._clock.now()
        balances = await self._store.balances(customer.id)
        if currency is None:
            currency = customer.currency or next((b.grant.currency for b in balances), None)
            if currency is None:
                currency = await self._currency(customer, None)
        mine = [b for b in balances if b.grant.currency == currency]
        settled = sum(b.balance_minor for b in mine if b.grant.status == "active" and b.grant.effective_at <= now)
        pending = sum(b.grant.amount_minor for b in mine if b.grant.status == "pending")
        consumed = 0
        if live and self._preview is not None and settled > 0:
            try:
                preview = await self._preview.preview(customer.id, now)
            except NotFoundError:
                preview = None  # no subscription running: nothing is consumed yet
            if preview is not None and preview.currency == currency:
                consumed = -sum(line.amount_minor for line in preview.lines if line.kind == "credit")
        return CreditBalance(currency, settled - consumed, settled, pending, tuple(mine))

    async def expire_due(self, before: datetime) -> list[CreditGrant]:
        """Active grants whose expiry is at or before `before`: expired, each with a row taking what was left."""
        return [
            await self._store.end(g.id, "expired", at=self._clock.now()) for g in await self._store.expiring(before)
        ]


def _flag(metadata: Mapping[str, Any], name: str) -> bool:
    return str(metadata.get(name, "")).lower() == "true"


def _before_payment(customer: Customer) -> bool:
    return _flag(customer.metadata, BEFORE_PAYMENT)


def _same(stored: CreditGrant, asked: CreditGrant, *, explicit_effective: bool) -> bool:
    fields = (
        "name",
        "amount_minor",
        "currency",
        "funding_method",
        "priority",
        "expires_after",
        "features",
        "price_minor",
        "metadata",
    )
    if any(getattr(stored, name) != getattr(asked, name) for name in fields):
        return False
    return not explicit_effective or stored.effective_at == asked.effective_at
