"""Consumers and keys: create a consumer, create a key (its plain text shown once), revoke a key."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollway.dashboard.pages_billing import page_of
from tollway.dashboard.security import Session
from tollway.dashboard.web import Web, form_of
from tollway.identity.keys import NewKey


def routes(web: Web) -> list[BaseRoute]:
    deps = web.deps

    async def consumers(request: Request, session: Session) -> Response:
        everyone = sorted(await deps.identity.list_consumers(), key=lambda s: s.consumer.username)
        shown, page, pages = page_of(everyone, request.query_params.get("page"))
        return web.page(
            request,
            session,
            "consumers.html",
            "consumers",
            consumers=shown,
            page=page,
            pages=pages,
            total=len(everyone),
        )

    async def create_consumer(request: Request, session: Session) -> Response:
        username = form_of(request).get("username", "").strip()
        consumer = await deps.identity.create_consumer(username)
        return web.redirect(f"/dashboard/consumers/{consumer.username}?done=created")

    async def render_consumer(request: Request, session: Session, new_key: NewKey | None = None) -> Response:
        username = request.path_params["username"]
        summary = await deps.identity.consumer(username)
        keys = await deps.identity.keys(username)
        now = deps.clock.now()
        return web.page(
            request,
            session,
            "consumer.html",
            "consumers",
            consumer=summary.consumer,
            keys=keys,
            new_key=new_key,
            now=now,
        )

    async def consumer_page(request: Request, session: Session) -> Response:
        return await render_consumer(request, session)

    async def create_key(request: Request, session: Session) -> Response:
        name = form_of(request).get("name", "").strip() or None
        created = await deps.identity.create_key(request.path_params["username"], name=name)
        if deps.refresh_keys is not None:
            await deps.refresh_keys()  # the gateway takes the key from its next request
        return await render_consumer(request, session, created)

    async def revoke_key(request: Request, session: Session) -> Response:
        username, key_id = request.path_params["username"], request.path_params["key_id"]
        await deps.identity.revoke_key(username, key_id)
        if deps.refresh_keys is not None:
            await deps.refresh_keys()  # refused by the gateway from its next request
        return web.redirect(f"/dashboard/consumers/{username}?done=revoked")

    return [
        Route("/dashboard/consumers", web.admin(consumers), methods=["GET"]),
        Route("/dashboard/consumers", web.admin(create_consumer), methods=["POST"]),
        Route("/dashboard/consumers/{username}", web.admin(consumer_page), methods=["GET"]),
        Route("/dashboard/consumers/{username}/keys", web.admin(create_key), methods=["POST"]),
        Route("/dashboard/consumers/{username}/keys/{key_id}/revoke", web.admin(revoke_key), methods=["POST"]),
    ]
