"""Liveness and readiness probes, and what a client sees while the database is down (§4, §5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.databases import POSTGRES_ENV, make_settings, postgres_url
from tests.support.factories import assert_problem, task_payload
from todo_api.db.connect import create_database
from todo_api.errors import DB_RETRY_AFTER_SECONDS, DatabaseUnavailable
from todo_api.main import create_app

# Generous: the point is "answers instead of hanging", not how fast (timings live in bench/).
NO_HANG_S = 15


@pytest.fixture(
    params=["postgres-refused", "postgres-no-such-database", "sqlite-missing-directory"]
)
async def down_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose database cannot be reached."""
    if request.param == "postgres-refused":
        url = "postgresql://postgres@127.0.0.1:1/test"
    elif request.param == "postgres-no-such-database":
        base = postgres_url()
        if base is None:
            pytest.skip(f"{POSTGRES_ENV} is not set")
        url = make_url(base).set(database="todo_no_such_database").render_as_string(False)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path}/no-such-directory/todo.db"
    settings = make_settings(database_url=url, db_connect_timeout=2, db_pool_timeout=2)
    app = create_app(settings)
    app.state.database = create_database(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await app.state.database.dispose()


def assert_unavailable(response: httpx.Response) -> None:
    body = assert_problem(response, 503)
    assert body["type"] == "/problems/service-unavailable"
    assert body["title"] == DatabaseUnavailable.title
    assert body["detail"] == DatabaseUnavailable().detail
    assert response.headers["retry-after"] == str(DB_RETRY_AFTER_SECONDS)


class TestReadiness:
    async def test_reports_ok_when_the_database_answers(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health")

        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"status": "ok", "database": "ok"}

    async def test_unreachable_database_is_503_with_retry_after(
        self, down_client: httpx.AsyncClient
    ) -> None:
        async with asyncio.timeout(NO_HANG_S):
            response = await down_client.get("/health")

        assert_unavailable(response)


class TestLiveness:
    async def test_reports_ok(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health/live")

        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"status": "ok"}

    async def test_reports_ok_while_the_database_is_down(
        self, down_client: httpx.AsyncClient
    ) -> None:
        response = await down_client.get("/health/live")

        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


class TestTaskEndpointsWhileTheDatabaseIsDown:
    async def test_listing_is_503_not_500(self, down_client: httpx.AsyncClient) -> None:
        async with asyncio.timeout(NO_HANG_S):
            response = await down_client.get("/api/alice/tasks")

        assert_unavailable(response)

    async def test_creating_is_503_not_500(self, down_client: httpx.AsyncClient) -> None:
        async with asyncio.timeout(NO_HANG_S):
            response = await down_client.post("/api/alice/tasks", json=task_payload())

        assert_unavailable(response)

    async def test_validation_still_answers_400_without_the_database(
        self, down_client: httpx.AsyncClient
    ) -> None:
        response = await down_client.post("/api/alice/tasks", json={"title": ""})

        assert_problem(response, 400, fields=["title"])
