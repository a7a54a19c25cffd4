"""Portal tokens (OpenMeter's consumer portal tokens): a bearer token bound to one subject or one customer, with
an expiry, that reads that subject's (or customer's) usage and nothing else.

Invariants: the plain token is shown once, when created, and stored only as its SHA-256 digest; a token past its
expiry or invalidated authenticates nothing; invalidating by subject (or customer) ends every token of it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from tollway.clock import Clock
from tollway.errors import NotFoundError, UnauthenticatedError, ValidationError
from tollway.ids import new_id

TOKEN_PREFIX = "twp_"
DEFAULT_LIFETIME = timedelta(days=30)
MAX_LIFETIME = timedelta(days=366)
MAX_METERS = 32


@dataclass(frozen=True)
class PortalToken:
    id: str
    digest: str  # sha256:<hex> of the plain token
    subject: str | None  # exactly one of subject and customer_key is set
    customer_key: str | None
    expires_at: datetime
    created_at: datetime
    allowed_meters: tuple[str, ...] | None = None  # None: every meter
    invalidated_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.invalidated_at is not None or now >= self.expires_at


@dataclass(frozen=True)
class NewPortalToken:
    token: PortalToken
    plain: str


class PortalTokenStore(Protocol):
    async def insert_portal_token(self, token: PortalToken) -> None: ...

    async def portal_token_by_digest(self, digest: str) -> PortalToken | None: ...

    async def list_portal_tokens(self, limit: int) -> list[PortalToken]:
        """The newest first."""
        ...

    async def invalidate_portal_tokens(
        self, *, at: datetime, token_id: str | None, subject: str | None, customer_key: str | None
    ) -> int:
        """Mark the tokens that match (all when every filter is None) invalidated; how many were."""
        ...


class CustomerLookup(Protocol):
    async def customer_key_of(self, id_or_key: str) -> str:
        """The customer's key; raises NotFoundError."""
        ...


def digest_of(plain: str) -> str:
    return "sha256:" + hashlib.sha256(plain.encode()).hexdigest()


class PortalTokens:
    def __init__(self, store: PortalTokenStore, clock: Clock, customers: CustomerLookup | None = None) -> None:
        self._store = store
        self._clock = clock
        self._customers = customers

    async def create(
        self,
        *,
        subject: str | None = None,
        customer: str | None = None,
        expires_at: datetime | None = None,
        allowed_meters: Sequence[str] | None = None,
    ) -> NewPortalToken:
        now = self._clock.now()
        if (subject is None) == (customer is None):
            raise ValidationError("give either subject or customer (not both)", field="subject")
        customer_key = None
        if subject is not None and (not subject.strip() or len(subject) > 255):
            raise ValidationError("subject must be 1-255 characters", field="subject")
        if customer is not None:
            if self._customers is None:
                raise ValidationError("customers are not available here; give a subject", field="customer")
            customer_key = await self._customers.customer_key_of(customer)
        if expires_at is None:
            expires_at = now + DEFAULT_LIFETIME
        elif expires_at.tzinfo is None:
            raise ValidationError("expiresAt must carry a UTC offset or Z", field="expiresAt")
        elif expires_at <= now:
            raise ValidationError(f"expiresAt must be in the future (now is {now.isoformat()})", field="expiresAt")
        elif expires_at - now > MAX_LIFETIME:
            raise ValidationError("expiresAt must be within 366 days", field="expiresAt")
        meters = None
        if allowed_meters is not None:
            if len(allowed_meters) > MAX_METERS or any(not isinstance(m, str) or not m for m in allowed_meters):
                raise ValidationError(f"allowedMeterSlugs: at most {MAX_METERS} slugs", field="allowedMeterSlugs")
            meters = tuple(dict.fromkeys(allowed_meters))
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = PortalToken(
            id=new_id(now),
            digest=digest_of(plain),
            subject=subject,
            customer_key=customer_key,
            expires_at=expires_at,
            created_at=now,
            allowed_meters=meters,
        )
        await self._store.insert_portal_token(token)
        return NewPortalToken(token=token, plain=plain)

    async def authenticate(self, plain: str) -> PortalToken:
        """The live token `plain` names; UnauthenticatedError for an unknown, expired or invalidated one."""
        found = None
        if plain.startswith(TOKEN_PREFIX) and len(plain) <= 128:
            digest = digest_of(plain)
            found = await self._store.portal_token_by_digest(digest)
            if found is not None and not hmac.compare_digest(found.digest, digest):
                found = None
        if found is None or found.expired(self._clock.now()):
            raise UnauthenticatedError("missing, invalid or expired portal token")
        return found

    async def list(self, limit: int = 100) -> list[PortalToken]:
        return await self._store.list_portal_tokens(limit)

    async def invalidate(
        self, *, token_id: str | None = None, subject: str | None = None, customer: str | None = None
    ) -> int:
        """OpenMeter: by id, by subject, or (neither given) every token. Tollway adds: by customer."""
        customer_key = None
        if customer is not None:
            if self._customers is None:
                raise NotFoundError(f"customer {customer!r} not found", field="customer")
            customer_key = await self._customers.customer_key_of(customer)
        return await self._store.invalidate_portal_tokens(
            at=self._clock.now(), token_id=token_id, subject=subject, customer_key=customer_key
        )


def scope_text(token: PortalToken) -> str:
    return f"customer {token.customer_key}" if token.customer_key is not None else f"subject {token.subject}"
