"""Customers: billable entities. `subjects` lists the subjects (consumers) whose usage a customer pays for;
a subject belongs to at most one customer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Address:
    country: str | None = None  # ISO 3166-1 alpha-2
    postal_code: str | None = None
    state: str | None = None
    city: str | None = None
    line1: str | None = None
    line2: str | None = None
    phone_number: str | None = None


@dataclass(frozen=True)
class Customer:
    id: str
    key: str
    name: str
    subjects: tuple[str, ...] = ()
    email: str | None = None
    currency: str | None = None  # ISO 4217; defaults to the plan's currency when absent
    billing_address: Address | None = None
    description: str = ""
    stripe_customer_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    managed_by: str = "api"  # api | config
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None
