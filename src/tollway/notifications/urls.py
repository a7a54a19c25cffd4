"""Where a webhook may point (SSRF guard): https only, and never at loopback, private, link-local,
shared (CGNAT), multicast, reserved or cloud metadata addresses — unless private targets are allowed
(TOLLWAY_WEBHOOK_ALLOW_PRIVATE=1, for tests and receivers on a LAN; then http:// is allowed too).

Checked when a channel is created or changed (a ValidationError naming the field) and again before each
delivery (DNS can change between the two).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from tollway.errors import ValidationError

Resolve = Callable[[str, int], Awaitable[Sequence[str]]]  # host, port -> the addresses it resolves to
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})
MAX_URL_LENGTH = 2048


def forbidden_address(address: str) -> str | None:
    """Why a target address is refused, or None when it is a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a shared (carrier-grade NAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return "a reserved address"
    return None


def split_target(url: str, *, allow_private: bool, field: str = "url") -> tuple[str, int]:
    """The host and port of a webhook URL; ValidationError naming `field` when its form is refused."""
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(f"{field} is longer than {MAX_URL_LENGTH} characters", field=field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError(f"{field} is not a valid URL", field=field) from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise ValidationError(
            f"{field} must be an https:// URL (http:// only with TOLLWAY_WEBHOOK_ALLOW_PRIVATE=1)", field=field
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValidationError(f"{field} has no host", field=field)
    if parts.username is not None or parts.password is not None:
        raise ValidationError(f"{field} may not carry credentials (use customHeaders)", field=field)
    return host, port or (443 if parts.scheme == "https" else 80)


async def _resolved(host: str, port: int, resolve: Resolve, field: str) -> Sequence[str]:
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise ValidationError(f"{field}: the host {host!r} does not resolve ({exc})", field=field) from None
    if not addresses:
        raise ValidationError(f"{field}: the host {host!r} does not resolve", field=field)
    return addresses


async def check_url(url: str, *, allow_private: bool, resolve: Resolve, field: str = "url") -> None:
    """Refuse (ValidationError naming `field`) a URL that is not https or whose host is, or resolves to, an
    address a webhook may not reach."""
    host, port = split_target(url, allow_private=allow_private, field=field)
    if allow_private:
        return
    if host.lower() in METADATA_HOSTS:
        raise ValidationError(f"{field} points at a cloud metadata service", field=field)
    try:
        addresses: Sequence[str] = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = await _resolved(host, port, resolve, field)
    for address in addresses:
        why = forbidden_address(address)
        if why is not None:
            raise ValidationError(
                f"{field} resolves to {address}, {why}: webhooks go to public addresses only "
                "(TOLLWAY_WEBHOOK_ALLOW_PRIVATE=1 allows private ones)",
                field=field,
            )
