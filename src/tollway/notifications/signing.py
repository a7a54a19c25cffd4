"""Standard Webhooks signing (https://www.standardwebhooks.com): what the `standardwebhooks` and `svix`
libraries verify unchanged.

    webhook-id:        the event id (the same on every retry: the receiver's dedup key)
    webhook-timestamp: unix seconds of the attempt
    webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">

keyed with the bytes of the base64 part of the channel's `whsec_...` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from datetime import datetime
from typing import Final

from tollway.errors import ValidationError

SECRET_PREFIX: Final = "whsec_"
SECRET_BYTES: Final = 32
# headers a channel's custom headers may not set (compared lower case)
RESERVED_HEADERS: Final = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length", "host"}
)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def secret_key(secret: str, field: str = "signingSecret") -> bytes:
    """The HMAC key of a `whsec_` secret; ValidationError naming `field` when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValidationError(f"{field} must start with {SECRET_PREFIX}", field=field)
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{field} must be {SECRET_PREFIX} followed by base64", field=field) from None
    if not 24 <= len(key) <= 64:
        raise ValidationError(f"{field} must hold 24 to 64 bytes of key, got {len(key)}", field=field)
    return key


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secret: str, msg_id: str, at: datetime, body: bytes, custom: dict[str, str] | None = None
) -> dict[str, str]:
    """The headers of one attempt: the channel's custom headers, then the signature headers (which win)."""
    timestamp = int(at.timestamp())
    headers = {k: v for k, v in (custom or {}).items() if k.lower() not in RESERVED_HEADERS}
    headers.update(
        {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, msg_id, timestamp, body),
        }
    )
    return headers
