"""Sign-in sessions and CSRF tokens for the dashboard (HMAC-signed cookies; nothing stored server-side).

A session cookie is `<issued unix seconds>.<nonce>.<signature>`, signed with the process's dashboard secret
(TOLLWAY_DASHBOARD_SECRET, else a random one made at start: sessions then end with the process and are not shared
between workers). It lasts SESSION_TTL. Every form carries a CSRF token: an HMAC of the session's nonce, so a page
of another site can neither read nor forge it; a POST without the right token changes nothing. Signing out ends the
nonce in this process (and the cookie is cleared).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

SESSION_COOKIE = "tollway_session"
PORTAL_COOKIE = "tollway_portal"
SIGNIN_CSRF_COOKIE = "tollway_signin"
SESSION_TTL = timedelta(hours=12)
MAX_ENDED = 10_000


def _mac(secret: bytes, text: str) -> str:
    digest = hmac.new(secret, text.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Session:
    nonce: str
    issued_at: datetime


class Sessions:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the dashboard secret must be at least 16 bytes")
        self._secret = secret
        self._ended: OrderedDict[str, None] = OrderedDict()

    def new(self, now: datetime) -> str:
        payload = f"{int(now.timestamp())}.{secrets.token_urlsafe(16)}"
        return f"{payload}.{_mac(self._secret, 'session:' + payload)}"

    def read(self, cookie: str | None, now: datetime) -> Session | None:
        if not cookie or len(cookie) > 200:
            return None
        payload, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature.encode(), _mac(self._secret, "session:" + payload).encode()):
            return None
        issued_text, _, nonce = payload.partition(".")
        if not issued_text.isdigit() or nonce in self._ended:
            return None
        issued = datetime.fromtimestamp(int(issued_text), now.tzinfo)
        if not issued - timedelta(minutes=5) <= now < issued + SESSION_TTL:
            return None
        return Session(nonce=nonce, issued_at=issued)

    def end(self, session: Session) -> None:
        self._ended[session.nonce] = None
        while len(self._ended) > MAX_ENDED:
            self._ended.popitem(last=False)

    def csrf(self, nonce: str) -> str:
        return _mac(self._secret, "csrf:" + nonce)

    def csrf_ok(self, nonce: str, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest((presented or "").encode(), self.csrf(nonce).encode())


def token_matches(presented: str, expected: str | None) -> bool:
    """The admin token check, in constant time; never true without a configured token."""
    if not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())
