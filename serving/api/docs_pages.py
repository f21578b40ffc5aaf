"""``/docs`` (Swagger UI) and ``/redoc`` served with their scripts and styles from the
installed package (``fastapi_offline``'s copies), not from a CDN: the API's documentation
works on a machine without internet, as FastAPI documents for self-hosted docs assets.
The pages and assets need no API key, like ``/openapi.json``."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

#: Where the docs' scripts, styles and favicon are served.
ASSETS_PATH = "/docs-assets"


def register_docs(app: FastAPI) -> None:
    """Mount the assets and add both pages (the app is created with ``docs_url=None`` and
    ``redoc_url=None``: FastAPI's own pages would load them from a CDN)."""
    assets = files("fastapi_offline") / "static"
    app.mount(ASSETS_PATH, StaticFiles(directory=str(assets)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    def prefix(request: Request) -> str:
        # Behind a proxy that strips a path prefix, links must carry it.
        return str(request.scope.get("root_path", "")).rstrip("/")

    async def swagger(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        )

    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    app.add_route("/docs", swagger, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
