"""The operator dashboard (/dashboard, admin sign-in) and the customer portal (/portal, portal token): server-rendered
pages over the same services as the management API. Served by `tollway serve` itself, offline: every script, style
and chart library comes from this package (static/), nothing from another origin."""

from __future__ import annotations

import mimetypes
import secrets
from importlib.resources import files
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send

from tollway.dashboard import pages_billing, pages_keys, pages_ops, portal_pages
from tollway.dashboard.deps import DashboardDeps
from tollway.dashboard.security import SESSION_COOKIE, SESSION_TTL, SIGNIN_CSRF_COOKIE, Session, token_matches
from tollway.dashboard.web import SECURITY_HEADERS, Web, read_form
from tollway.errors import DomainError

STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file under static/ (vendor/ included) by its path there, read once at start."""
    found: dict[str, tuple[bytes, str]] = {}
    root = files("tollway.dashboard") / "static"

    def walk(folder: object, prefix: str) -> None:
        for entry in folder.iterdir():  # type: ignore[attr-defined]
            name = prefix + entry.name
            if entry.is_dir():
                walk(entry, name + "/")
            elif not entry.name.startswith("."):
                suffix = "." + entry.name.rsplit(".", 1)[-1]
                kind = STATIC_TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0] or "text/plain; charset=utf-8"
                found[name] = (entry.read_bytes(), kind)

    walk(root, "")
    return found


class Dashboard:
    """The ASGI app for /dashboard... and /portal... paths."""

    def __init__(self, deps: DashboardDeps) -> None:
        self.web = Web(deps)
        self._static = static_files()
        routes: list[BaseRoute] = [
            Route("/dashboard/static/{name:path}", self.static),
            Route("/dashboard/signin", self.signin_page, methods=["GET"]),
            Route("/dashboard/signin", self.signin, methods=["POST"]),
            Route("/dashboard/signout", self.web.admin(self.signout), methods=["POST"]),
            *pages_ops.routes(self.web),
            *pages_billing.routes(self.web),
            *pages_keys.routes(self.web),
            *portal_pages.routes(self.web),
        ]
        self._router = Router(routes, redirect_slashes=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._router(scope, receive, send)

    async def static(self, request: Request) -> Response:
        found = self._static.get(request.path_params["name"])
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        body, kind = found
        headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
        return Response(body, media_type=kind, headers=headers)

    async def signin_page(self, request: Request) -> Response:
        if self.web.session_of(request) is not None:
            return self.web.redirect(_next(request.query_params.get("next")))
        return self._signin_form(request.query_params.get("next"), "", 200)

    def _signin_form(self, next_path: str | None, message: str, status: int) -> Response:
        token = secrets.token_urlsafe(24)  # double submit: the form's field must equal this cookie
        response = self.web.render(
            "signin.html",
            http_status=status,
            csrf=token,
            next=_next(next_path),
            message=message,
            enabled=bool(self.web.deps.admin_token),
        )
        response.set_cookie(
            SIGNIN_CSRF_COOKIE, token, max_age=3600, path="/dashboard/signin", httponly=True, samesite="strict"
        )
        return response

    async def signin(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except DomainError as exc:
            return self.web.error_page(exc, signed_in=False)
        expected = request.cookies.get(SIGNIN_CSRF_COOKIE) or ""
        if not expected or not secrets.compare_digest(expected, form.get("csrf", "")):
            return self._signin_form(form.get("next"), "The sign-in form expired; try again.", 403)
        if not token_matches(form.get("token", "").strip(), self.web.deps.admin_token):
            return self._signin_form(form.get("next"), "That is not the admin token.", 401)
        response = self.web.redirect(_next(form.get("next")))
        response.set_cookie(
            SESSION_COOKIE,
            self.web.sessions.new(self.web.deps.clock.now()),
            max_age=int(SESSION_TTL.total_seconds()),
            path="/dashboard",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        response.delete_cookie(SIGNIN_CSRF_COOKIE, path="/dashboard/signin")
        return response

    async def signout(self, request: Request, session: Session) -> Response:
        self.web.sessions.end(session)
        response = self.web.redirect("/dashboard/signin?done=signedout")
        response.delete_cookie(SESSION_COOKIE, path="/dashboard", httponly=True, samesite="strict")
        return response


def _next(path: str | None) -> str:
    """Where to go after signing in: a dashboard path only (never another site)."""
    if path and path.startswith("/dashboard") and "//" not in path and "\\" not in path:
        return quote(path, safe="/?=&-_.")
    return "/dashboard"


__all__ = ["SECURITY_HEADERS", "Dashboard"]
