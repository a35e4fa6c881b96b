"""The interactive documentation, `/docs` (Swagger UI) and `/redoc` (ReDoc), served entirely from
this process: the assets come from the `fastapi-offline` distribution, the pages and their
start-up scripts from this package. Nothing is loaded from another origin (FastAPI's own pages
load Swagger UI and ReDoc from a CDN and fonts from Google: blank pages on a machine that cannot
reach them), and a Content-Security-Policy on each page allows only what it needs.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

VENDOR = Path(fastapi_offline.__file__).parent / "static"
OWN = Path(__file__).parent / "static"
ASSETS = "/docs/assets"
OWN_ASSETS = "/docs/scripts"

# Swagger UI and ReDoc style their components from script (inline styles: 'unsafe-inline' for
# styles only, never scripts); ReDoc renders in a worker made from a blob; both draw icons as
# data: images. Everything else comes from this origin or nowhere.
POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src blob:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


# The one resource ReDoc's bundle loads from another origin: the logo beside "API docs by
# Redocly" in its sidebar. It is served with that URL pointing at our own icon instead.
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"

HEADERS = {
    "Content-Security-Policy": POLICY,
    "Referrer-Policy": "no-referrer",
}


def _page(title: str, body: str, *, stylesheet: str | None = None) -> str:
    style = f'<link rel="stylesheet" href="{ASSETS}/{stylesheet}">' if stylesheet else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        f'<link rel="icon" type="image/png" href="{ASSETS}/favicon.png">{style}'
        f"</head><body>{body}</body></html>"
    )


def install_docs(app: FastAPI, *, openapi_url: str) -> None:
    """`/docs`, `/redoc`, their assets, and `/` leading to `/docs`. The app is built with
    `docs_url=None, redoc_url=None` so FastAPI's CDN pages do not exist."""
    url = escape(openapi_url)
    swagger = _page(
        f"{app.title} - Swagger UI",
        f'<div id="swagger-ui" data-openapi-url="{url}"></div>'
        f'<script src="{ASSETS}/swagger-ui-bundle.js"></script>'
        f'<script src="{OWN_ASSETS}/swagger-init.js"></script>',
        stylesheet="swagger-ui.css",
    )
    redoc = _page(
        f"{app.title} - ReDoc",
        f'<div id="redoc" data-openapi-url="{url}"></div>'
        f'<script src="{ASSETS}/redoc.standalone.js"></script>'
        f'<script src="{OWN_ASSETS}/redoc-init.js"></script>',
    )

    async def docs() -> HTMLResponse:
        return HTMLResponse(swagger, headers=HEADERS)

    async def redoc_page() -> HTMLResponse:
        return HTMLResponse(redoc, headers=HEADERS)

    async def root() -> RedirectResponse:
        # Relative, so nothing of it comes from the Host header.
        return RedirectResponse("/docs", status_code=307)

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc_page, methods=["GET"], include_in_schema=False)
    redoc_bundle = (VENDOR / "redoc.standalone.js").read_bytes()
    redoc_bundle = redoc_bundle.replace(REDOC_LOGO, f"{ASSETS}/favicon.png".encode())

    async def redoc_script() -> Response:
        return Response(
            redoc_bundle,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.add_api_route("/", root, methods=["GET"], include_in_schema=False)
    # Before the mount of the other assets, which would otherwise answer for it.
    app.add_api_route(
        f"{ASSETS}/redoc.standalone.js", redoc_script, methods=["GET"], include_in_schema=False
    )
    app.mount(ASSETS, StaticFiles(directory=VENDOR), name="docs-assets")
    app.mount(OWN_ASSETS, StaticFiles(directory=OWN), name="docs-scripts")
