"""`/mcp` in process, through the MCP SDK's client over an ASGI transport: what depends on
settings (open mode, hosts, the metadata's issuer, rate limits, MCP_ENABLED) and what the
endpoint leaves for the access log and the metrics. `tests/system/test_mcp_served.py` runs the
tools end to end against a served process."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from fastapi import FastAPI
from mcp import Client
from mcp.shared.auth import ProtectedResourceMetadata
from prometheus_client import generate_latest

from tests.support.apps import build_app, close_app
from tests.support.databases import make_settings
from tests.support.mcp import MODES, mcp_client
from tests.support.observability import sample
from tests.support.tokens import AUDIENCE, ISSUER, SECRET, bearer, hs256_token
from todo_api.db.database import Database
from todo_api.observability.accesslog import ACCESS_LOGGER
from todo_api.observability.metrics import enable_metrics

PUBLIC_URL = "https://tasks.example.test/mcp"


@asynccontextmanager
async def mcp_app(db: Database, **values: Any) -> AsyncIterator[FastAPI]:
    """An app on the test's database, its MCP endpoint running, answering `testserver`."""
    url = db.engine.url.render_as_string(hide_password=False)
    settings = make_settings(
        database_url=url, mcp_allowed_hosts=["testserver"], mcp_public_url=PUBLIC_URL, **values
    )
    application = build_app(db, settings)
    try:
        async with application.state.mcp.running():
            yield application
    finally:
        await close_app(application)


@asynccontextmanager
async def connected(
    application: FastAPI, *, token: str | None = None, mode: str = "auto"
) -> AsyncIterator[Client]:
    transport = httpx2.ASGITransport(app=application)
    async with mcp_client(
        "http://testserver/mcp",
        token=token,
        mode=mode,  # type: ignore[arg-type]
        transport=transport,
    ) as client:
        yield client


def http(application: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://testserver"
    )


@pytest.mark.parametrize("mode", MODES)
async def test_without_authentication_tools_act_for_the_development_user(
    db: Database, mode: str
) -> None:
    async with mcp_app(db, mcp_dev_user="dana") as application:
        async with connected(application, mode=mode) as client:
            made = await client.call_tool("add_task", {"title": "Open mode"})
        async with http(application) as rest:
            listed = await rest.get("/api/dana/tasks")

    assert made.structured_content is not None
    assert made.structured_content["user_id"] == "dana"
    assert [task["id"] for task in listed.json()] == [made.structured_content["id"]]


async def test_an_unlisted_host_is_refused_before_anything_else(db: Database) -> None:
    async with mcp_app(db) as application:
        async with http(application) as rest:
            wrong_host = await rest.post(
                "/mcp",
                json={},
                headers={"Host": "evil.example", "Content-Type": "application/json"},
            )
            wrong_origin = await rest.post(
                "/mcp", json={}, headers={"Origin": "https://evil.example"}
            )

    assert wrong_host.status_code == 421
    assert wrong_host.headers["content-type"] == "application/problem+json"
    assert wrong_host.json()["detail"] == "Invalid Host header"
    assert wrong_origin.status_code == 403
    assert wrong_origin.json()["detail"] == "Invalid Origin header"


async def test_mcp_itself_answers_without_a_redirect(db: Database) -> None:
    async with mcp_app(db) as application:
        async with http(application) as rest:
            slash = await rest.post("/mcp/", json={})
            get = await rest.get("/mcp", headers={"Accept": "text/event-stream"})
            delete = await rest.delete("/mcp")

    assert slash.status_code == 404
    assert "location" not in slash.headers
    # Stateless: no stream for server-initiated messages to open, no session to end.
    assert get.status_code == 405
    assert get.headers["allow"] == "POST"
    assert get.headers["content-type"] == "application/problem+json"
    assert delete.status_code == 405


async def test_the_metadata_names_the_public_url_and_the_issuer(db: Database) -> None:
    async with mcp_app(db, auth_jwt_secret=SECRET, auth_jwt_issuer=ISSUER) as application:
        async with http(application) as rest:
            own = await rest.get("/.well-known/oauth-protected-resource/mcp")
            root = await rest.get("/.well-known/oauth-protected-resource")
            refused = await rest.post("/mcp", json={})

    assert own.status_code == root.status_code == 200
    assert own.json() == root.json()
    metadata = ProtectedResourceMetadata.model_validate(own.json())
    assert str(metadata.resource) == PUBLIC_URL
    assert [str(server) for server in metadata.authorization_servers] == [ISSUER]
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == (
        'Bearer realm="todo-api", resource_metadata='
        '"https://tasks.example.test/.well-known/oauth-protected-resource/mcp"'
    )


async def test_without_authentication_no_metadata_is_served(db: Database) -> None:
    async with mcp_app(db) as application:
        async with http(application) as rest:
            response = await rest.get("/.well-known/oauth-protected-resource/mcp")

    assert response.status_code == 404


async def test_the_audience_is_checked_on_mcp_as_on_the_api(db: Database) -> None:
    async with mcp_app(db, auth_jwt_secret=SECRET, auth_jwt_audience=AUDIENCE) as application:
        async with http(application) as rest:
            wrong = await rest.post(
                "/mcp", json={}, headers=bearer(hs256_token("alice", aud="someone-else"))
            )
        async with connected(application, token=hs256_token("alice", aud=AUDIENCE)) as client:
            stats = await client.call_tool("task_stats", {})

    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert not stats.is_error


async def test_a_spent_budget_is_a_tool_error_with_the_wait(db: Database) -> None:
    async with mcp_app(db, auth_jwt_secret=SECRET, rate_limit="2/minute") as application:
        async with connected(application, token=hs256_token("alice")) as client:
            results = [await client.call_tool("task_stats", {}) for _ in range(3)]
        async with http(application) as rest:
            api = await rest.get("/api/alice/tasks", headers=bearer(hs256_token("alice")))

    assert [result.is_error for result in results] == [False, False, True]
    text = results[2].content[0].text  # type: ignore[union-attr]
    assert text.startswith("Too many requests: the request budget is spent. Retry in ")
    # The same budget as the API's.
    assert api.status_code == 429


async def test_the_access_line_and_the_metrics_name_the_tool_and_its_outcome(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = enable_metrics()

    def calls(tool: str, outcome: str) -> float:
        text = generate_latest(metrics.registry).decode()
        return sample(text, "todo_api_mcp_tool_calls_total", tool=tool, outcome=outcome)

    before = calls("get_task", "not-found"), calls("task_stats", "ok")
    async with mcp_app(db, metrics_enabled=True) as application:
        caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
        async with connected(application) as client:
            await client.call_tool("get_task", {"task_id": "00000000-0000-0000-0000-000000000000"})
            await client.call_tool("task_stats", {})

    after = calls("get_task", "not-found"), calls("task_stats", "ok")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    lines = [r for r in caplog.records if r.name == ACCESS_LOGGER and hasattr(r, "tool")]
    assert [(r.tool, r.tool_outcome) for r in lines] == [  # type: ignore[attr-defined]
        ("get_task", "not-found"),
        ("task_stats", "ok"),
    ]
    assert lines[0].getMessage().endswith(" get_task not-found")
    assert lines[0].route == "/mcp"  # type: ignore[attr-defined]


async def test_with_mcp_disabled_there_is_no_endpoint(db: Database) -> None:
    async with http(build_app(db, make_settings(mcp_enabled=False))) as rest:
        response = await rest.post("/mcp", json={})

    assert response.status_code == 404


def test_with_mcp_disabled_the_sdk_is_never_imported() -> None:
    script = (
        "import sys\n"
        "from todo_api.main import create_app\n"
        "from todo_api.config import Settings\n"
        "create_app(Settings(_env_file=None, mcp_enabled=False))\n"
        "assert 'mcp' not in sys.modules, 'mcp was imported'\n"
        "create_app(Settings(_env_file=None))\n"
        "assert 'mcp' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)  # noqa: S603


def test_production_serves_mcp_only_at_its_public_url(db: Database) -> None:
    production = {"environment": "production", "auth_jwt_secret": SECRET}
    unnamed = make_settings(**production)
    named = make_settings(**production, mcp_public_url=PUBLIC_URL)

    assert not unnamed.mcp_serving
    assert build_app(db, unnamed).state.mcp is None
    assert named.mcp_serving
    assert not make_settings(**production, mcp_public_url=PUBLIC_URL, mcp_enabled=False).mcp_serving
    # Production answers only its public host; development also this machine's.
    assert named.mcp_hosts == ["tasks.example.test"]
    assert make_settings(mcp_public_url=PUBLIC_URL).mcp_hosts == [
        "tasks.example.test",
        "localhost:*",
        "127.0.0.1:*",
        "[::1]:*",
    ]
