"""Database faults against the real server process: PostgreSQL reached through a TCP proxy of the
test's own, whose link is cut and restored at will. Requests fail fast with 503 and Retry-After
while the database is gone, the service recovers by itself when it returns, and a read whose
connection dies is retried once while a write is not.

Writes retried with their Idempotency-Key across a fault: test_faults_writes.py."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
    libpq_dsn,
    make_settings,
    postgres_url,
)
from tests.support.factories import assert_problem
from tests.support.faults import CONNECT_TIMEOUT_S, Link, served
from todo_api.db.connect import create_database
from todo_api.db.migrations import upgrade
from todo_api.main import create_app

pytestmark = [
    pytest.mark.postgres_only,
    # The proxy stands between the service and PostgreSQL itself.
    pytest.mark.direct_postgres,
    pytest.mark.skipif(postgres_url() is None, reason="TEST_DATABASE_URL is not set"),
]

# How long a request may take while the database is gone: the connect timeout, and a margin
# for the pool's wait and the HTTP round trip.
FAIL_FAST_S = CONNECT_TIMEOUT_S + 3
OUTAGE_S = 10


async def timed_get(http: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    response = await http.get(path)
    return response, time.monotonic() - began


class TestDatabaseGone:
    async def test_requests_fail_fast_with_503_then_recover_without_restart(
        self, link: Link, database_behind: str, tmp_path: Path
    ) -> None:
        with served(database_behind, tmp_path) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
                created = (await http.post("/api/alice/tasks", json={"title": "Kept"})).json()

                link.cut()
                # The database stays gone for OUTAGE_S; the service keeps answering meanwhile.
                outages = []
                gone_until = time.monotonic() + OUTAGE_S
                while time.monotonic() < gone_until:
                    outages.append(await timed_get(http, "/api/alice/tasks"))
                    await asyncio.sleep(0.5)
                health, _ = await timed_get(http, "/health")
                write = await http.post("/api/alice/tasks", json={"title": "Refused"})

                assert len(outages) >= 3
                for response, seconds in outages:
                    problem = assert_problem(response, 503)
                    assert problem["type"] == "/problems/service-unavailable"
                    assert int(response.headers["retry-after"]) > 0
                    assert seconds < FAIL_FAST_S
                assert health.status_code == 503
                assert int(health.headers["retry-after"]) > 0
                assert_problem(write, 503)

                link.start()
                deadline = time.monotonic() + 15
                recovered = None
                while time.monotonic() < deadline:
                    response = await http.get("/api/alice/tasks")
                    if response.status_code == 200:
                        recovered = response
                        break
                    assert_problem(response, 503)
                    await asyncio.sleep(0.2)

                assert recovered is not None, "the service did not recover within 15 s"
                assert [task["id"] for task in recovered.json()] == [created["id"]]
                assert (await http.get("/health")).status_code == 200
                after = await http.post("/api/alice/tasks", json={"title": "After"})
                assert after.status_code == 201


class TestConnectionsDroppedByTheServer:
    async def test_idle_connections_the_server_dropped_are_replaced_unnoticed(
        self, worker_tag: str
    ) -> None:
        """A restart or failover of PostgreSQL (or an idle timeout) ends the pool's connections;
        the next requests get fresh ones instead of errors."""
        name = f"todo_dropped_{worker_tag}"
        url = await create_postgres_database(name)
        settings = make_settings(database_url=url)
        database = create_database(settings)
        application = create_app(settings)
        application.state.database = database
        try:
            await upgrade(database.engine)
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                created = await http.post("/api/alice/tasks", json={"title": "Before"})
                assert created.status_code == 201
                admin = await asyncpg.connect(libpq_dsn(url))
                try:
                    dropped = await admin.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = $1 AND pid <> pg_backend_pid()",
                        name,
                    )
                finally:
                    await admin.close()
                await asyncio.sleep(0.2)

                after = [await http.get("/api/alice/tasks") for _ in range(3)]
                written = await http.post("/api/alice/tasks", json={"title": "After"})

            assert dropped >= 1
            assert [r.status_code for r in after] == [200, 200, 200]
            assert [t["title"] for t in after[0].json()] == ["Before"]
            assert written.status_code == 201
        finally:
            await application.state.guard.close()
            await database.dispose()
            await drop_postgres_database(name)


class TestConnectionLostMidRequest:
    @pytest.mark.parametrize("pooler", [False, True], ids=["direct", "as-behind-a-pooler"])
    async def test_a_read_is_retried_once_on_a_fresh_connection(
        self, link: Link, database_behind: str, tmp_path: Path, pooler: bool
    ) -> None:
        with served(database_behind, tmp_path, pooler=pooler) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
                created = (await http.post("/api/alice/tasks", json={"title": "Kept"})).json()

                link.stall()
                read = asyncio.ensure_future(http.get(f"/api/alice/tasks/{created['id']}"))
                await asyncio.sleep(0.5)
                assert not read.done()
                link.drop_connections()
                response = await read

        assert response.status_code == 200, response.text
        assert response.json()["id"] == created["id"]

    @pytest.mark.parametrize("pooler", [False, True], ids=["direct", "as-behind-a-pooler"])
    async def test_a_write_is_not_retried_blindly(
        self, link: Link, database_behind: str, tmp_path: Path, pooler: bool
    ) -> None:
        with served(database_behind, tmp_path, pooler=pooler) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
                link.stall()
                write = asyncio.ensure_future(
                    http.post("/api/alice/tasks", json={"title": "Maybe"})
                )
                await asyncio.sleep(0.5)
                link.drop_connections()
                response = await write
                stored = (await http.get("/api/alice/tasks")).json()

        # The insert may or may not have committed before the link died; the client is told it
        # failed, and the write was not repeated (at most one task): Idempotency-Key is how a
        # client retries such a write safely.
        assert_problem(response, 503)
        assert len(stored) <= 1
