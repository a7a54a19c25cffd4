"""The dashboard and the portal in process (httpx over ASGI): every page answers without a 5xx on an empty
database and with every kind of entity; sign-in, CSRF and sign-out; portal tokens (API and page) show one
customer's data only; GET /v1/usage shows a key holder its own usage."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.in_process import InProcess, in_process
from tollway.clock import FrozenClock

ADMIN = "tw-dashboard-admin-token-0123"
START = datetime(2026, 11, 1, tzinfo=UTC)
CONFIG: dict[str, Any] = {
    "providers": [{"name": "local", "type": "simulator"}],
    "models": [{"name": "demo", "targets": [{"provider": "local", "model": "demo"}]}],
    "consumers": [
        {"username": "acme-corp", "keys": ["acme-key"]},
        {"username": "globex-agent", "keys": ["globex-key"]},
    ],
    "features": [
        {"key": "input-tokens", "meter": "llm_tokens", "filters": {"type": "input"}},
        {"key": "output-tokens", "meter": "llm_tokens", "filters": {"type": "output"}},
    ],
    "plans": [
        {
            "key": "starter",
            "name": "Starter",
            "currency": "USD",
            "billing_cadence": "P1M",
            "rate_cards": [
                {"feature": "input-tokens", "price": {"type": "unit", "amount": "0.000003"}},
                {
                    "feature": "output-tokens",
                    "price": {"type": "unit", "amount": "0.00001"},
                    "entitlement": {"type": "metered", "limit": "100000", "hard": True},
                },
            ],
        }
    ],
    "customers": [
        {"key": "acme", "name": "Acme Corp", "usage_from": ["acme-corp"], "subscription": {"plan": "starter"}},
        {"key": "globex", "name": "Globex <b>Industries</b>", "usage_from": ["globex-agent"]},
    ],
}
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "Hello there"}]}


@dataclass
class Env:
    tw: InProcess
    clock: FrozenClock
    client: httpx.AsyncClient


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html[:500]
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, token: str = ADMIN) -> httpx.Response:
    form = await client.get("/dashboard/signin")
    return await client.post(
        "/dashboard/signin", data={"token": token, "csrf": csrf_of(form.text), "next": "/dashboard"}
    )


@pytest.fixture
async def empty(tmp_path: Path) -> AsyncIterator[Env]:
    clock = FrozenClock(START)
    async with (
        in_process(
            tmp_path,
            {"providers": [{"name": "local", "type": "simulator"}]},
            clock=clock,
            admin_token=ADMIN,
            allow_empty_config=True,
        ) as tw,
        tw.http() as client,
    ):
        yield Env(tw, clock, client)


@pytest.fixture
async def full(tmp_path: Path) -> AsyncIterator[Env]:
    """Acme used the gateway and has an issued invoice; Globex used it too; a draft plan and an API key exist."""
    clock = FrozenClock(START)
    async with in_process(tmp_path, CONFIG, clock=clock, admin_token=ADMIN) as tw, tw.http() as client:
        clock.set(START + timedelta(days=14))
        for key in ("acme-key", "acme-key", "globex-key"):
            answer = await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.text
        await tw.runtime.pipeline.stop(timeout_s=5)  # stored now (the runtime's stop finds nothing left)
        await tw.runtime.pipeline.start()
        admin = {"Authorization": f"Bearer {ADMIN}"}
        draft = {
            "key": "pro",
            "name": "Pro",
            "currency": "USD",
            "billingCadence": "P1M",
            "phases": [
                {
                    "key": "main",
                    "name": "Main",
                    "rateCards": [
                        {"type": "flat_fee", "key": "fee", "name": "Fee", "price": {"type": "flat", "amount": "49"}}
                    ],
                }
            ],
        }
        assert (await client.post("/api/v1/plans", json=draft, headers=admin)).status_code == 201
        assert (
            await client.post("/api/v1/consumers/acme-corp/keys", json={"name": "ci"}, headers=admin)
        ).status_code == 201
        clock.set(datetime(2026, 12, 1, 2, tzinfo=UTC))  # past the period end and the grace: the closer invoices it
        assert tw.runtime.billing is not None
        await tw.runtime.billing.run_once()
        clock.set(datetime(2026, 12, 2, tzinfo=UTC))
        grant = {"name": "Welcome credit", "amount": "20", "key": "welcome"}
        made = await client.post("/api/v1/customers/acme/credits/grants", json=grant, headers=admin)
        assert made.status_code == 201, made.text
        yield Env(tw, clock, client)


def page_paths(html_pages: list[str]) -> list[str]:
    """Every dashboard link found on the given pages (entities' own pages included)."""
    found: set[str] = set()
    for html in html_pages:
        found.update(re.findall(r'href="(/dashboard[^"#]*)"', html))
    return sorted(p.replace("&amp;", "&") for p in found if "/static/" not in p)


BASE_PAGES = [
    "/dashboard",
    "/dashboard?range=24h&granularity=hour&tz=Europe/Berlin",
    "/dashboard?range=90d&granularity=month&tz=Asia/Tokyo",
    "/dashboard/customers",
    "/dashboard/customers?q=zzz",
    "/dashboard/invoices",
    "/dashboard/invoices?status=paid&period=2026-11",
    "/dashboard/consumers",
    "/dashboard/plans",
    "/dashboard/meters",
    "/dashboard/meters?meter=llm_requests&groupBy=subject&range=30d",
    "/dashboard/meters?meter=llm_tokens&groupBy=type&filter=type%3Dinput&granularity=month",
    "/dashboard/meters/csv?meter=llm_tokens&groupBy=model",
    "/dashboard/live",
    "/dashboard/live/rows",
]


async def test_every_page_answers_on_an_empty_database(empty: Env) -> None:
    assert (await empty.client.get("/dashboard")).status_code == 303  # not signed in
    assert (await sign_in(empty.client)).status_code == 303
    for path in BASE_PAGES:
        answer = await empty.client.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])
    overview = (await empty.client.get("/dashboard")).text
    assert "No usage yet" in overview
    assert "acme-secret-key" in overview  # what to do next: the quickstart request
    assert "No customers yet" in (await empty.client.get("/dashboard/customers")).text
    assert "No invoices" in (await empty.client.get("/dashboard/invoices")).text
    for path in ("/dashboard/customers/nobody", "/dashboard/invoices/nope", "/dashboard/consumers/nobody"):
        assert (await empty.client.get(path)).status_code == 404, path


async def test_every_page_answers_for_every_entity(full: Env) -> None:
    client = full.client
    await sign_in(client)
    seen = [(await client.get(path)).text for path in BASE_PAGES]
    linked = page_paths(seen)
    assert "/dashboard/customers/acme" in linked
    assert any(p.startswith("/dashboard/invoices/") for p in linked)
    assert "/dashboard/consumers/acme-corp" in linked
    more = [(await client.get(p)).text for p in linked]
    for path in sorted(set(linked) | set(page_paths(more))):
        answer = await client.get(path)
        assert answer.status_code < 500, (path, answer.text[:300])
        assert answer.status_code == 200, path


async def test_pages_show_exact_numbers_escape_names_and_send_security_headers(full: Env) -> None:
    client = full.client
    await sign_in(client)
    overview = await client.get("/dashboard?range=30d")
    assert "script-src 'self'" in overview.headers["content-security-policy"]
    assert overview.headers["x-frame-options"] == "DENY"
    requests = re.search(r'id="total-requests">([^<]+)<', overview.text)
    assert requests is not None
    assert requests.group(1) == "3"
    customers = (await client.get("/dashboard/customers")).text
    assert "Globex &lt;b&gt;Industries&lt;/b&gt;" in customers  # autoescaped
    assert "<b>Industries</b>" not in customers
    acme = (await client.get("/dashboard/customers/acme")).text
    assert "TW-2026-000001" in acme
    assert 'aria-label="output-tokens"' in acme  # the entitlement's bar
    assert "Welcome credit" in acme
    assert 'id="credit-balance">$20.00<' in acme
    invoices = (await client.get("/dashboard/invoices")).text
    invoice_id = re.search(r'href="/dashboard/invoices/([0-9A-Z]+)"', invoices)
    assert invoice_id is not None
    pdf = await client.get(f"/dashboard/invoices/{invoice_id.group(1)}/pdf")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    document = await client.get(f"/dashboard/invoices/{invoice_id.group(1)}/document")
    assert "frame-ancestors 'self'" in document.headers["content-security-policy"]


async def test_signin_csrf_and_signout(full: Env) -> None:
    client = full.client
    assert (await sign_in(client, "wrong-token")).status_code == 401
    assert (await client.get("/dashboard/consumers")).status_code == 303
    form = await client.get("/dashboard/signin")  # a sign-in without the form's own token is refused
    refused = await client.post("/dashboard/signin", data={"token": ADMIN, "csrf": "forged"})
    assert refused.status_code == 403
    assert "tollway_session" not in refused.cookies
    assert form.status_code == 200
    signed = await sign_in(client)
    assert "httponly" in signed.headers["set-cookie"].lower()
    assert "samesite=strict" in signed.headers["set-cookie"].lower()
    # a POST without the CSRF token (or from another origin) changes nothing
    assert (await client.post("/dashboard/consumers", data={"username": "mallory"})).status_code == 403
    page = await client.get("/dashboard/consumers")
    token = csrf_of(page.text)
    other = await client.post(
        "/dashboard/consumers", data={"username": "mallory", "csrf": token}, headers={"Origin": "http://evil.test"}
    )
    assert other.status_code == 403
    assert "mallory" not in (await client.get("/dashboard/consumers")).text
    made = await client.post("/dashboard/consumers", data={"username": "newbie", "csrf": token})
    assert made.status_code == 303
    assert "newbie" in (await client.get("/dashboard/consumers")).text
    # a key is shown once; revoking it makes the gateway refuse it at once
    created = await client.post("/dashboard/consumers/newbie/keys", data={"name": "first", "csrf": token})
    plain = re.search(r'id="new-key" type="text" readonly value="([^"]+)"', created.text)
    assert plain is not None
    assert created.headers["cache-control"] == "no-store"
    assert plain.group(1) not in (await client.get("/dashboard/consumers/newbie")).text
    key_id = re.search(r'/keys/([0-9A-Z]+)/revoke"', created.text)
    assert key_id is not None
    auth = {"Authorization": f"Bearer {plain.group(1)}"}
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=auth)).status_code == 200
    revoke = await client.post(f"/dashboard/consumers/newbie/keys/{key_id.group(1)}/revoke", data={"csrf": token})
    assert revoke.status_code == 303
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=auth)).status_code == 401
    # sign out: the session ends (its cookie no longer works even if kept)
    session = client.cookies.get("tollway_session")
    assert (await client.post("/dashboard/signout", data={"csrf": token})).status_code == 303
    client.cookies.set("tollway_session", session or "", path="/dashboard")
    assert (await client.get("/dashboard")).status_code == 303


async def test_invoice_actions_need_csrf_and_follow_the_lifecycle(full: Env) -> None:
    client = full.client
    await sign_in(client)
    listed = (await client.get("/dashboard/invoices")).text
    invoice_id = re.search(r'href="/dashboard/invoices/([0-9A-Z]+)"', listed)
    assert invoice_id is not None
    path = f"/dashboard/invoices/{invoice_id.group(1)}"
    page = await client.get(path)
    assert "Mark uncollectible" in page.text
    assert (await client.post(path + "/void", data={"csrf": "forged"})).status_code == 403
    assert (await client.post(path + "/uncollectible", data={"csrf": csrf_of(page.text)})).status_code == 303
    shown = (await client.get(path)).text
    assert "Invoice marked uncollectible." not in shown  # the flash only follows the redirect's ?done
    assert '<span class="badge uncollectible">' in shown
    resync = await client.post(path + "/resync", data={"csrf": csrf_of(shown)})
    assert resync.status_code == 400  # no Stripe configured here
    draft = re.search(r'action="/dashboard/plans/([0-9A-Z]+)/publish"', (await client.get("/dashboard/plans")).text)
    assert draft is not None
    published = await client.post(f"/dashboard/plans/{draft.group(1)}/publish", data={"csrf": csrf_of(shown)})
    assert published.status_code == 303
    assert "/publish" not in (await client.get("/dashboard/plans")).text


async def test_portal_shows_one_customer_and_keeps_the_token_out_of_the_url(full: Env) -> None:
    client = full.client
    admin = {"Authorization": f"Bearer {ADMIN}"}
    made = await client.post("/api/v1/portal/tokens", json={"customer": "acme"}, headers=admin)
    assert made.status_code == 200, made.text
    token = made.json()["token"]
    assert made.json()["subject"] == "customer:acme"
    portal = httpx.AsyncClient(transport=client._transport, base_url="http://tollway")
    async with portal:
        opened = await portal.get("/portal", params={"token": token})
        assert opened.status_code == 303
        assert opened.headers["location"] == "/portal"
        assert "samesite=lax" in opened.headers["set-cookie"].lower()
        page = await portal.get("/portal?range=30d")
        assert page.status_code == 200
        assert "Acme Corp" in page.text
        assert "TW-2026-000001" in page.text
        assert 'id="portal-credits">$20.00<' in page.text
        assert "Globex" not in page.text
        assert "globex-agent" not in page.text
        # another customer's invoice PDF is as if it did not exist
        gx_invoices = (await client.get("/api/v1/invoices", params={"customer": "globex"}, headers=admin)).json()
        assert gx_invoices["items"] == []
        acme = (await client.get("/api/v1/invoices", params={"customer": "acme"}, headers=admin)).json()["items"][0]
        assert (await portal.get(f"/portal/invoices/{acme['id']}/pdf")).content.startswith(b"%PDF")
        assert (await portal.get("/portal/invoices/01NOTANINVOICE/pdf")).status_code == 404
        # the admin dashboard is not reachable with a portal cookie
        assert (await portal.get("/dashboard")).status_code == 303
        # invalidated: the cookie stops working
        gone = await client.post("/api/v1/portal/tokens/invalidate", json={"customer": "acme"}, headers=admin)
        assert gone.status_code == 204
        assert (await portal.get("/portal")).status_code == 401
        assert (await portal.get("/portal", params={"token": "twp_not-a-token"})).status_code == 401


async def test_portal_query_api_narrows_to_the_token(full: Env) -> None:
    client = full.client
    admin = {"Authorization": f"Bearer {ADMIN}"}
    subject = (await client.post("/api/v1/portal/tokens", json={"subject": "globex-agent"}, headers=admin)).json()
    acme = (await client.post("/api/v1/portal/tokens", json={"customer": "acme"}, headers=admin)).json()
    params = {"groupBy": "subject", "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}

    async def query(token: str, **extra: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return await client.get("/api/v1/portal/meters/llm_requests/query", params={**params, **extra}, headers=headers)

    mine = await query(subject["token"], subject="acme-corp")  # naming another subject changes nothing
    assert mine.status_code == 200
    assert [(r["subject"], r["value"]) for r in mine.json()["data"]] == [("globex-agent", "1")]
    theirs = await query(acme["token"])
    assert [(r["subject"], r["value"]) for r in theirs.json()["data"]] == [("acme-corp", "2")]
    assert (await query(ADMIN)).status_code == 401  # the admin token is not a portal token
    assert (await query("twp_wrong")).status_code == 401
    limited = await client.post(
        "/api/v1/portal/tokens", json={"subject": "acme-corp", "allowedMeterSlugs": ["llm_tokens"]}, headers=admin
    )
    assert (await query(limited.json()["token"])).status_code == 404
    await client.post("/api/v1/portal/tokens/invalidate", json={"id": subject["id"]}, headers=admin)
    assert (await query(subject["token"])).status_code == 401
    assert (await query(acme["token"])).status_code == 200
    # creating tokens takes the admin token; bad bodies are 400s
    assert (await client.post("/api/v1/portal/tokens", json={"subject": "x"})).status_code == 401
    for body in ({}, {"subject": "a", "customer": "acme"}, {"subject": "a", "expiresAt": "2020-01-01T00:00:00Z"}):
        assert (await client.post("/api/v1/portal/tokens", json=body, headers=admin)).status_code == 400, body
    assert (await client.post("/api/v1/portal/tokens", json={"customer": "nobody"}, headers=admin)).status_code == 404
    listed = (await client.get("/api/v1/portal/tokens", headers=admin)).json()
    assert {t["id"] for t in listed} >= {subject["id"], acme["id"]}
    assert all("token" not in t for t in listed)


async def test_key_holder_reads_its_own_usage(full: Env) -> None:
    client = full.client
    full.clock.set(datetime(2026, 11, 20, tzinfo=UTC))  # back inside the month of the calls
    mine = await client.get("/v1/usage", headers={"Authorization": "Bearer acme-key"})
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["consumer"] == "acme-corp"
    assert body["requests"] == "2"
    theirs = (await client.get("/v1/usage", headers={"Authorization": "Bearer globex-key"})).json()
    assert theirs["consumer"] == "globex-agent"
    assert theirs["requests"] == "1"
    assert int(body["totalTokens"]) == 2 * int(theirs["totalTokens"])  # the same request twice
    assert (await client.get("/v1/usage")).status_code == 401
    assert (await client.get("/v1/usage", headers={"Authorization": f"Bearer {ADMIN}"})).status_code == 401
