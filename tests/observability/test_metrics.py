"""Prometheus metrics at `GET /metrics`: what is counted and how, and who may read them.

Counts that stay exact when several worker processes serve: tests/system/test_served.py."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.apps import build_app, client_for, close_app, database_url
from tests.support.databases import make_settings
from tests.support.factories import assert_problem, create_task
from tests.support.observability import sample, series_labels
from tests.support.tokens import OTHER_SECRET, SECRET, bearer, hs256_token
from todo_api.config import ConfigurationError, load_settings
from todo_api.db.database import Database
from todo_api.observability.metrics import MULTIPROCESS_ENV, prepare_multiprocess_metrics

METRICS_TOKEN = "scrape-token-0123456789abcdef"
TASK_ROUTE = "/api/{user_id}/tasks/{task_id}"
LIST_ROUTE = "/api/{user_id}/tasks"


async def scrape(client: httpx.AsyncClient, **headers: str) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


@pytest.fixture
async def make_app(db: Database) -> AsyncIterator[Any]:
    """Builds apps on the test's database with the given settings; closes them after."""
    made: list[FastAPI] = []

    def build(**values: Any) -> FastAPI:
        values = {"metrics_enabled": True, **values}
        settings = make_settings(database_url=database_url(db), **values)
        application = build_app(db, settings)
        made.append(application)
        return application

    yield build
    for application in made:
        await close_app(application)


@pytest.fixture
async def client(make_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app()) as http:
        yield http


class TestRequestMetrics:
    async def test_a_request_is_counted_by_its_route_template(
        self, client: httpx.AsyncClient
    ) -> None:
        task = await create_task(client)
        labels = {"method": "GET", "route": TASK_ROUTE, "status": "2xx"}
        before = await scrape(client)

        for _ in range(3):
            assert (await client.get(f"/api/alice/tasks/{task['id']}")).status_code == 200
        after = await scrape(client)

        count = "todo_api_http_requests_total"
        assert sample(after, count, **labels) - sample(before, count, **labels) == 3
        # The raw path never becomes a label.
        routes = {found["route"] for found in series_labels(after, count)}
        assert TASK_ROUTE in routes
        assert not any(task["id"] in route for route in routes)

    async def test_the_latency_histogram_has_a_bucket_for_every_request(
        self, client: httpx.AsyncClient
    ) -> None:
        labels = {"method": "GET", "route": LIST_ROUTE, "status": "2xx"}
        name = "todo_api_http_request_duration_seconds"
        before = await scrape(client)

        for _ in range(2):
            assert (await client.get("/api/alice/tasks")).status_code == 200
        after = await scrape(client)

        def delta(suffix: str, **extra: str) -> float:
            return sample(after, name + suffix, **labels, **extra) - sample(
                before, name + suffix, **labels, **extra
            )

        assert delta("_count") == 2
        assert delta("_bucket", le="+Inf") == 2
        assert delta("_bucket", le="30.0") == 2
        assert delta("_sum") > 0

    async def test_status_is_counted_by_class(self, client: httpx.AsyncClient) -> None:
        labels = {"method": "POST", "route": LIST_ROUTE}
        before = await scrape(client)

        assert (await client.post("/api/alice/tasks", json={"title": ""})).status_code == 400
        after = await scrape(client)

        name = "todo_api_http_requests_total"
        assert (
            sample(after, name, **labels, status="4xx")
            - sample(before, name, **labels, status="4xx")
            == 1
        )
        assert {found["status"] for found in series_labels(after, name)} <= {
            "1xx",
            "2xx",
            "3xx",
            "4xx",
            "5xx",
        }

    async def test_an_unknown_path_is_counted_as_unmatched(self, client: httpx.AsyncClient) -> None:
        labels = {"method": "GET", "route": "unmatched", "status": "4xx"}
        before = await scrape(client)

        assert (await client.get("/no/such/path/12345")).status_code == 404
        after = await scrape(client)

        name = "todo_api_http_requests_total"
        assert sample(after, name, **labels) - sample(before, name, **labels) == 1
        assert not any("12345" in found["route"] for found in series_labels(after, name))

    async def test_an_unknown_method_is_counted_as_other(self, client: httpx.AsyncClient) -> None:
        before = await scrape(client)

        await client.request("BREW", "/api/alice/tasks")
        after = await scrape(client)

        name = "todo_api_http_requests_total"
        assert sample(after, name, method="other") - sample(before, name, method="other") == 1
        assert "BREW" not in after

    async def test_scrapes_count_neither_as_requests_nor_in_flight(
        self, client: httpx.AsyncClient
    ) -> None:
        await scrape(client)
        text = await scrape(client)

        routes = {found["route"] for found in series_labels(text, "todo_api_http_requests_total")}
        assert "/metrics" not in routes
        assert sample(text, "todo_api_http_requests_in_flight") == 0


class TestDatabaseMetrics:
    async def test_statements_are_timed(self, client: httpx.AsyncClient) -> None:
        name = "todo_api_db_query_duration_seconds_count"
        before = await scrape(client)

        await create_task(client)
        await client.get("/api/alice/tasks")
        after = await scrape(client)

        assert sample(after, name, operation="fetch") > sample(before, name, operation="fetch")

    async def test_the_pools_are_read_at_scrape_time(
        self, client: httpx.AsyncClient, backend: str
    ) -> None:
        await client.get("/api/alice/tasks")

        text = await scrape(client)

        pools = {found["pool"] for found in series_labels(text, "todo_api_db_pool_size")}
        # One pool per process, named for its database; its size is the most it opens on
        # PostgreSQL (DB_POOL_SIZE + DB_MAX_OVERFLOW), the pool's own size on SQLite.
        assert pools == {backend}
        most = 15 if backend == "postgresql" else 10
        assert sample(text, "todo_api_db_pool_size", pool=backend) == most
        for pool in pools:
            # Nothing is in use between requests; what is open is idle.
            assert sample(text, "todo_api_db_pool_checked_out", pool=pool) == 0
            assert sample(text, "todo_api_db_pool_overflow", pool=pool) == 0


class TestRefusalMetrics:
    @pytest.mark.parametrize(
        ("reason", "headers", "status"),
        [
            ("missing", {}, 401),
            ("malformed_header", {"Authorization": "Basic YWxpY2U6cHc="}, 401),
            ("malformed", bearer("not-a-jwt"), 401),
            ("expired", bearer(hs256_token("alice", ttl=-120)), 401),
            ("bad_signature", bearer(hs256_token("alice", secret=OTHER_SECRET)), 401),
            # Made at import, used minutes later: valid for an hour, not five minutes.
            ("user_mismatch", bearer(hs256_token("bob", ttl=3600)), 403),
        ],
        ids=lambda value: value if isinstance(value, str) else None,
    )
    async def test_authentication_failures_are_counted_by_reason(
        self, make_app: Any, reason: str, headers: dict[str, str], status: int
    ) -> None:
        async with client_for(make_app(auth_jwt_secret=SECRET)) as client:
            before = await scrape(client)

            response = await client.get("/api/alice/tasks", headers=headers)
            after = await scrape(client)

        assert_problem(response, status)
        name = "todo_api_auth_failures_total"
        assert sample(after, name, reason=reason) - sample(before, name, reason=reason) == 1
        # Every reason is there from the start, and no token ever is.
        assert {found["reason"] for found in series_labels(after, name)} >= {"missing", "expired"}
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        assert not token or token not in after

    async def test_rate_limit_refusals_are_counted(self, make_app: Any) -> None:
        auth = bearer(hs256_token("alice"))
        async with client_for(make_app(auth_jwt_secret=SECRET, rate_limit="1/minute")) as client:
            before = await scrape(client)

            statuses = [(await client.get("/api/alice/tasks", headers=auth)).status_code]
            statuses.append((await client.get("/api/alice/tasks", headers=auth)).status_code)
            after = await scrape(client)

        assert statuses == [200, 429]
        name = "todo_api_rate_limited_requests_total"
        assert sample(after, name, subject="user") - sample(before, name, subject="user") == 1


class TestAccess:
    async def test_disabled_metrics_are_an_unknown_path(self, make_app: Any) -> None:
        async with client_for(make_app(metrics_enabled=False)) as client:
            response = await client.get("/metrics")
            document = (await client.get("/openapi.json")).json()

        assert_problem(response, 404)
        assert "/metrics" not in document["paths"]

    def test_production_leaves_them_off_unless_asked(self) -> None:
        production = {"environment": "production", "auth_jwt_secret": SECRET}

        assert make_settings(**production).expose_metrics is False
        assert make_settings(**production, metrics_enabled=True).expose_metrics is True
        assert make_settings().expose_metrics is True

    async def test_enabled_metrics_stay_out_of_the_openapi_document(
        self, client: httpx.AsyncClient
    ) -> None:
        document = (await client.get("/openapi.json")).json()

        assert "/metrics" not in document["paths"]

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer wrong-token-0123456789"},
            {"Authorization": f"Basic {METRICS_TOKEN}"},
            {"Authorization": f"Bearer {METRICS_TOKEN}x"},
        ],
        ids=["missing", "wrong", "not-bearer", "longer"],
    )
    async def test_a_scrape_without_the_token_is_401(
        self, make_app: Any, headers: dict[str, str]
    ) -> None:
        async with client_for(make_app(metrics_token=METRICS_TOKEN)) as client:
            response = await client.get("/metrics", headers=headers)

        problem = assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith('Bearer realm="todo-api"')
        assert "todo_api_http_requests" not in response.text
        assert METRICS_TOKEN not in response.text
        assert problem["type"] == "/problems/unauthorized"

    async def test_a_scrape_with_the_token_is_answered(self, make_app: Any) -> None:
        async with client_for(make_app(metrics_token=METRICS_TOKEN)) as client:
            text = await scrape(client, Authorization=f"Bearer {METRICS_TOKEN}")

        assert "# TYPE todo_api_http_requests_total counter" in text

    def test_a_short_token_stops_start_up_naming_the_variable(self) -> None:
        with pytest.raises(ConfigurationError, match="METRICS_TOKEN: must be at least 16"):
            load_settings(_env_file=None, metrics_token="short")


class TestMultiprocessDirectory:
    def test_an_operators_directory_is_emptied_of_the_last_run(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        stale = tmp_path / "counter_4242.db"
        stale.write_bytes(b"old counts")
        keep = tmp_path / "README"
        keep.write_text("not ours")
        monkeypatch.setenv(MULTIPROCESS_ENV, str(tmp_path))

        prepare_multiprocess_metrics(enabled=True, workers=4)

        assert not stale.exists()
        assert keep.exists()

    def test_one_worker_needs_no_directory(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)

        prepare_multiprocess_metrics(enabled=True, workers=1)

        assert MULTIPROCESS_ENV not in os.environ

    def test_nothing_is_prepared_with_metrics_off(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)

        prepare_multiprocess_metrics(enabled=False, workers=4)

        assert MULTIPROCESS_ENV not in os.environ
