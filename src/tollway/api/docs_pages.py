"""The API description (/openapi.json) and its reference pages (/docs: Swagger UI, /redoc: ReDoc), served with
their assets from this process, so they work offline. The assets come from the `fastapi-offline` package
(installed with Tollway).

Who may read them is a setting (TOLLWAY_API_DOCS): `admin` (the default) asks for the admin token like every
management route, `open` serves them to anyone, `off` serves none of them (404). The assets are the vendored
Swagger UI and ReDoc scripts, the same for every deployment: they are served whenever the pages are.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, JSONResponse

ASSETS_URL = "/docs-assets"
OPENAPI_URL = "/openapi.json"


def install_docs_pages(app: FastAPI, *, access: str, guard: Any) -> None:
    """Serve /openapi.json, /docs and /redoc to anyone (`open`), behind `guard` (`admin`) or not at all (`off`)."""
    if access == "off":
        return
    dependencies = [guard] if access == "admin" else []
    assets = files("fastapi_offline") / "static"
    app.mount(ASSETS_URL, StaticFiles(directory=str(assets)), name="docs-assets")
    title = app.title

    @app.get(OPENAPI_URL, include_in_schema=False, dependencies=dependencies)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=dependencies)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False, dependencies=dependencies)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=OPENAPI_URL,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
