"""In-memory PortalTokenStore (tests)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from tollway.portal.tokens import PortalToken


class MemoryPortalTokenStore:
    def __init__(self) -> None:
        self._tokens: dict[str, PortalToken] = {}

    async def insert_portal_token(self, token: PortalToken) -> None:
        self._tokens[token.id] = token

    async def portal_token_by_digest(self, digest: str) -> PortalToken | None:
        return next((t for t in self._tokens.values() if t.digest == digest), None)

    async def list_portal_tokens(self, limit: int) -> list[PortalToken]:
        return sorted(self._tokens.values(), key=lambda t: (t.created_at, t.id), reverse=True)[:limit]

    async def invalidate_portal_tokens(
        self, *, at: datetime, token_id: str | None, subject: str | None, customer_key: str | None
    ) -> int:
        count = 0
        for token in list(self._tokens.values()):
            if token.invalidated_at is not None:
                continue
            if token_id is not None and token.id != token_id:
                continue
            if subject is not None and token.subject != subject:
                continue
            if customer_key is not None and token.customer_key != customer_key:
                continue
            self._tokens[token.id] = replace(token, invalidated_at=at)
            count += 1
        return count
