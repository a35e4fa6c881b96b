"""Database faults against the real server process: PostgreSQL reached through a TCP proxy of the
test's own, whose link is cut and restored at will. Requests fail fast with 503 and Retry-After
while the database is gone, and the service recovers by itself when it returns."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import (
    create_postgres_database,
    drop_postgres_database,
    libpq_dsn,
    make_settings,
    postgres_url,
)
from tests.factories import assert_problem
from tests.processes import serving
from todo_api.core.db import create_database
from todo_api.core.migrate import upgrade
from todo_api.main import create_app

pytestmark = [
    pytest.mark.postgres_only,
    # The proxy stands between the service and PostgreSQL itself.
    pytest.mark.direct_postgres,
    pytest.mark.skipif(postgres_url() is None, reason="TEST_DATABASE_URL is not set"),
]

CONNECT_TIMEOUT_S = 2
# How long a request may take while the database is gone: the connect timeout, and a margin
# for the pool's wait and the HTTP round trip.
FAIL_FAST_S = CONNECT_TIMEOUT_S + 3
OUTAGE_S = 10


class Link:
    """A TCP proxy to PostgreSQL that can be cut (every connection dropped, new ones refused)
    and restored. It runs on an event loop of its own, in a thread, so that nothing the test
    does (waiting for the server to start, say) stalls the traffic it carries."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        # While stalled, what PostgreSQL sends is held back: queries hang mid-flight.
        self._stalled = False

    def start(self) -> None:
        self._call(self._start())

    def cut(self) -> None:
        self._call(self._cut())

    def stall(self) -> None:
        self._stalled = True

    def drop_connections(self) -> None:
        """End every connection now (as a failing network would), but accept new ones."""
        self._call(self._drop())

    def close(self) -> None:
        self._call(self._cut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._drop()

    async def _drop(self) -> None:
        self._stalled = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _connect(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            server_in, server_out = await asyncio.open_connection(*self.target)
        except OSError:
            client_out.transport.abort()
            return
        self._writers.update({client_out, server_out})
        await asyncio.gather(
            self._pipe(client_in, server_out),
            self._pipe(server_in, client_out, stallable=True),
        )

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, stallable: bool = False
    ) -> None:
        try:
            while data := await source.read(65536):
                while stallable and self._stalled and not sink.transport.is_closing():
                    await asyncio.sleep(0.01)
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            self._writers.discard(sink)
            sink.transport.abort()


@pytest.fixture
def link() -> Iterator[Link]:
    base = postgres_url()
    assert base is not None
    target = make_url(base)
    proxy = Link(target.host or "127.0.0.1", target.port or 5432)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
async def database_behind(link: Link, worker_tag: str) -> AsyncIterator[str]:
    """A fresh database, and its URL through the proxy."""
    name = f"todo_faults_{worker_tag}"
    url = await create_postgres_database(name)
    try:
        yield make_url(url).set(port=link.port).render_as_string(hide_password=False)
    finally:
        await drop_postgres_database(name)


@contextlib.contextmanager
def served(database_url: str, workdir: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DB_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S),
        "DB_POOL_TIMEOUT": "2",
        "RATE_LIMIT": "0",
        "LOG_LEVEL": "WARNING",
    }
    with serving(cwd=workdir, env=env) as base_url:
        yield base_url


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
    async def test_a_read_is_retried_once_on_a_fresh_connection(
        self, link: Link, database_behind: str, tmp_path: Path
    ) -> None:
        with served(database_behind, tmp_path) as base_url:
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

    async def test_a_write_is_not_retried_blindly(
        self, link: Link, database_behind: str, tmp_path: Path
    ) -> None:
        with served(database_behind, tmp_path) as base_url:
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
