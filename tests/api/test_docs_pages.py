"""The documentation pages as HTTP resources: served from this process only (no CDN, no Google
fonts), under a Content-Security-Policy, and `/` leading to them. The browser test
(tests/system/test_docs_browser.py) checks that they then work."""

from __future__ import annotations

import re

import httpx
import pytest

from todo_api.http.docs import REDOC_LOGO

PAGES = ["/docs", "/redoc"]


@pytest.mark.parametrize("path", PAGES)
async def test_pages_load_nothing_from_another_origin(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources, "the page loads its assets"
    assert all(source.startswith("/docs/") for source in sources), sources
    assert "<script>" not in response.text  # no inline script: the policy forbids it


@pytest.mark.parametrize("path", PAGES)
async def test_every_asset_a_page_names_is_served(client: httpx.AsyncClient, path: str) -> None:
    page = await client.get(path)
    for source in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        asset = await client.get(source)
        assert asset.status_code == 200, source
        assert asset.content, source


async def test_policy_allows_scripts_and_requests_from_this_origin_only(
    client: httpx.AsyncClient,
) -> None:
    directives = dict(
        item.split(" ", 1)
        for item in (await client.get("/docs")).headers["content-security-policy"].split("; ")
    )

    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


async def test_redoc_is_served_without_its_logo_from_another_origin(
    client: httpx.AsyncClient,
) -> None:
    bundle = await client.get("/docs/assets/redoc.standalone.js")

    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert REDOC_LOGO not in bundle.content
    assert b"/docs/assets/favicon.png" in bundle.content


async def test_the_root_leads_to_the_docs_without_naming_a_host(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/", headers={"Host": "evil.example"})

    assert response.status_code == 307
    assert response.headers["location"] == "/docs"


async def test_fastapis_cdn_pages_are_gone(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")

    assert "cdn.jsdelivr.net" not in page.text
    assert "fonts.googleapis.com" not in (await client.get("/redoc")).text
    assert (await client.get("/docs/oauth2-redirect")).status_code == 404
