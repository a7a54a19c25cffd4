"""Customers: who pays, for which subjects' usage. Built from the catalog store and the clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tollway.billing.customers import Address, Customer
from tollway.billing.ports import CatalogStore
from tollway.billing.subscriptions import Subscription
from tollway.billing.validation import (
    check_address,
    check_currency,
    check_email,
    check_key,
    check_metadata,
    check_name,
    check_subjects,
)
from tollway.clock import Clock
from tollway.errors import ConflictError, NotFoundError, ValidationError
from tollway.ids import new_id


class CustomerService:
    """Also metering's CustomerResolver (`subjects_of`): it needs only the store and the clock, so the composition
    root builds it before metering."""

    def __init__(self, store: CatalogStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create_customer(
        self,
        *,
        key: str,
        name: str,
        subjects: Sequence[str] = (),
        email: str | None = None,
        currency: str | None = None,
        billing_address: Address | None = None,
        description: str = "",
        stripe_customer_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        managed_by: str = "api",
    ) -> Customer:
        """ConflictError (field usageAttribution.subjectKeys) if a subject already belongs to a customer."""
        now = self._clock.now()
        customer = Customer(
            id=new_id(now),
            key=key,
            name=name,
            subjects=check_subjects(subjects),
            email=email,
            currency=currency,
            billing_address=billing_address,
            description=description,
            stripe_customer_id=stripe_customer_id,
            metadata=check_metadata(metadata),
            managed_by=managed_by,
            created_at=now,
            updated_at=now,
        )
        customer = self._checked_customer(customer)
        await self._store.insert_customer(customer)
        return customer

    @staticmethod
    def _checked_customer(customer: Customer) -> Customer:
        check_key(customer.key)
        check_name(customer.name)
        subjects = check_subjects(customer.subjects)
        check_email(customer.email)
        if customer.currency is not None:
            check_currency(customer.currency)
        check_address(customer.billing_address)
        return replace(customer, subjects=subjects, metadata=check_metadata(customer.metadata))

    async def update_customer(self, customer: Customer) -> Customer:
        """Replace the mutable fields of a stored customer (same id)."""
        stored = await self._store.get_customer(customer.id)
        if stored is None or stored.id != customer.id or stored.deleted_at is not None:
            raise NotFoundError(f"customer {customer.id!r} not found", field="customer")
        checked = self._checked_customer(customer)
        if checked.currency is not None:
            for subscription in await self._ongoing(stored.id):
                if subscription.currency != checked.currency:
                    raise ValidationError(
                        f"the customer's subscription bills in {subscription.currency}", field="currency"
                    )
        updated = replace(checked, created_at=stored.created_at, deleted_at=None, updated_at=self._clock.now())
        await self._store.update_customer(updated)
        return updated

    async def delete_customer(self, id_or_key: str) -> None:
        """Refused (ConflictError) while the customer has an active or scheduled subscription."""
        customer = await self.live_customer(id_or_key)
        if await self._ongoing(customer.id):
            raise ConflictError(
                f"customer {customer.key!r} has an active or scheduled subscription; cancel it first", field="customer"
            )
        now = self._clock.now()
        await self._store.update_customer(replace(customer, deleted_at=now, updated_at=now))

    async def _ongoing(self, customer_id: str) -> list[Subscription]:
        """Subscriptions active now or later (a zero-length one, canceled before it began, does not count)."""
        now = self._clock.now()
        return [
            s
            for s in await self._store.list_subscriptions(customer_id=customer_id)
            if s.active_to is None or (s.active_to > now and s.active_to > s.active_from)
        ]

    async def customers(self, *, include_deleted: bool = False) -> list[Customer]:
        return await self._store.list_customers(include_deleted=include_deleted)

    async def customer(self, id_or_key: str) -> Customer:
        found = await self._store.get_customer(id_or_key)
        if found is None:
            raise NotFoundError(f"customer {id_or_key!r} not found", field="customer")
        return found

    async def live_customer(self, id_or_key: str) -> Customer:
        """A customer that is not deleted (NotFoundError, field customer)."""
        found = await self._store.get_customer(id_or_key)
        if found is None or found.deleted_at is not None:
            raise NotFoundError(f"customer {id_or_key!r} not found", field="customer")
        return found

    async def subjects_of(self, customer: str) -> list[str]:
        """For the meter query's `customer` filter (metering's CustomerResolver). An unknown or deleted customer is
        a bad query parameter (ValidationError, field customer)."""
        try:
            return list((await self.live_customer(customer)).subjects)
        except NotFoundError as exc:
            raise ValidationError(f"unknown customer {customer!r}", field="customer") from exc
