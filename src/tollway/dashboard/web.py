"""The dashboard's web plumbing: templates (Jinja2, autoescaped), security headers, sign-in checks, CSRF on every
POST, bounded form bodies, and domain errors shown as pages."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tollway.dashboard import fmt
from tollway.dashboard.deps import DashboardDeps
from tollway.dashboard.security import SESSION_COOKIE, Session, Sessions
from tollway.error_shapes import status_of
from tollway.errors import DomainError, TooLargeError, UnsupportedMediaTypeError, ValidationError

log = logging.getLogger("tollway.dashboard")

MAX_FORM_BYTES = 64 * 1024
# Scripts and styles only from the package's own files; no inline script, no other origin; not framed elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on form posts (refused below);
    # either way no address (a portal link's token) leaves for another site in a Referer
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
Handler = Callable[[Request], Awaitable[Response]]
AdminHandler = Callable[[Request, Session], Awaitable[Response]]
NAV = (
    ("overview", "/dashboard", "Overview"),
    ("customers", "/dashboard/customers", "Customers"),
    ("invoices", "/dashboard/invoices", "Invoices"),
    ("consumers", "/dashboard/consumers", "Consumers & keys"),
    ("plans", "/dashboard/plans", "Plans & features"),
    ("meters", "/dashboard/meters", "Meters"),
    ("live", "/dashboard/live", "Live"),
)


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("tollway.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        number=fmt.number,
        money=fmt.money,
        small_money=fmt.small_money,
        when=fmt.when,
        day=fmt.day,
        price=fmt.price_label,
        urlpart=lambda value: quote(str(value), safe=""),
    )
    env.globals.update(nav=NAV, zones=fmt.ZONES, ranges=tuple(fmt.RANGES), granularities=tuple(fmt.GRANULARITIES))
    return env


class Web:
    def __init__(self, deps: DashboardDeps) -> None:
        self.deps = deps
        self.sessions = Sessions(deps.secret)
        self.env = environment()

    # -- responses ---------------------------------------------------------------------------------------

    def render(self, name: str, http_status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=http_status, headers=dict(SECURITY_HEADERS))

    def page(self, request: Request, session: Session, name: str, active: str, **context: Any) -> HTMLResponse:
        tz = fmt.zone(request.query_params.get("tz"))
        return self.render(
            name,
            active=active,
            csrf=self.sessions.csrf(session.nonce),
            tz=tz,
            tz_name=fmt.zone_name(tz),
            done=request.query_params.get("done", ""),
            **context,
        )

    @staticmethod
    def redirect(location: str) -> RedirectResponse:
        return RedirectResponse(location, status_code=303, headers=dict(SECURITY_HEADERS))

    def error_page(self, exc: DomainError, *, signed_in: bool) -> HTMLResponse:
        status = status_of(exc.kind)
        message = exc.message if status < 500 or exc.__cause__ is None else "The service is unavailable; try again."
        return self.render("error.html", http_status=status, status_code=status, message=message, signed_in=signed_in)

    # -- guards ------------------------------------------------------------------------------------------

    def session_of(self, request: Request) -> Session | None:
        return self.sessions.read(request.cookies.get(SESSION_COOKIE), self.deps.clock.now())

    def admin(self, handler: AdminHandler) -> Handler:
        """Signed in, or sent to the sign-in page; a POST also needs the session's CSRF token (and, when the
        browser says where it comes from, this origin)."""

        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            session = self.session_of(request)
            if session is None:
                if request.method != "GET" or request.headers.get("hx-request"):
                    return self.render("error.html", http_status=401, status_code=401, message="Sign in first.")
                return self.redirect("/dashboard/signin?next=" + quote(request.url.path, safe="/"))
            try:
                if request.method == "POST":
                    form = await read_form(request)
                    if not same_origin(request) or not self.sessions.csrf_ok(session.nonce, form.get("csrf")):
                        return self.render(
                            "error.html",
                            http_status=403,
                            status_code=403,
                            message="This form has expired or came from another site; reload the page and retry.",
                            signed_in=True,
                        )
                    request.state.form = form
                return await handler(request, session)
            except DomainError as exc:
                return self.error_page(exc, signed_in=True)
            except Exception:
                log.exception("dashboard page %s failed", request.url.path)
                return self.render(
                    "error.html", http_status=500, status_code=500, message="This page failed; see the log."
                )

        return guarded


def same_origin(request: Request) -> bool:
    """A POST whose Origin (or Referer) header names another site is refused; none at all is allowed."""
    origin = request.headers.get("origin") or ""
    if not origin or origin == "null":
        return origin != "null"
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form, at most MAX_FORM_BYTES; the first value of each field."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise UnsupportedMediaTypeError("forms are sent as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise TooLargeError(f"a form is at most {MAX_FORM_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("the form is not UTF-8", field="body") from None
    try:
        parsed = parse_qs(text, keep_blank_values=True, max_num_fields=64, strict_parsing=False)
    except ValueError:
        raise ValidationError("too many form fields", field="body") from None
    return {name: values[0] for name, values in parsed.items() if "\x00" not in values[0]}


def form_of(request: Request) -> dict[str, str]:
    form: dict[str, str] = request.state.form
    return form
