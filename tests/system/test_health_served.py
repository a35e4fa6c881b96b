"""`/health` on a served process against PostgreSQL: a flood of probes shares one check and adds
no connection to those the requests use, and the probe does not flap to 503 after the database
closed the service's connections (a restart, a failover, an idle kill); a real 503 is logged."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.databases import libpq_dsn, postgres_url, requires_postgres
from tests.support.processes import free_port, launch
from tests.system.test_connection_budget import (
    budget_database,
    count_connections,
    watching_connections,
)

pytestmark = [pytest.mark.system, pytest.mark.direct_postgres, requires_postgres]
__all__ = ["budget_database"]  # the fixture, used by name

PROBES = 300
POOL_SIZE = 5


def served_env(url: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": url,
        "DB_POOL_SIZE": str(POOL_SIZE),
        "DB_MAX_OVERFLOW": "0",
    }


async def test_a_flood_of_probes_shares_one_check_while_requests_succeed(
    budget_database: tuple[str, str], tmp_path: Path
) -> None:
    url, application = budget_database
    process, base_url = launch(cwd=tmp_path, env=served_env(url))

    async def requests_meanwhile(client: httpx.AsyncClient) -> list[int]:
        statuses = []
        for n in range(20):
            statuses.append(
                (await client.post("/api/alice/tasks", json={"title": f"t{n}"})).status_code
            )
        return statuses

    try:
        limits = httpx.Limits(max_connections=PROBES + 1, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
            assert (await client.get("/api/alice/tasks")).status_code == 200
            async with watching_connections(application) as seen:
                meanwhile = asyncio.create_task(requests_meanwhile(client))
                answers = await asyncio.gather(*(client.get("/health") for _ in range(PROBES)))
                statuses = await meanwhile
    finally:
        process.terminate()
        process.wait(timeout=15)

    assert [r.status_code for r in answers] == [200] * PROBES
    assert statuses == [201] * 20
    # One connection for the requests (one at a time), and none for the probes: the requests'
    # statements show the database answers, and a check of its own, when due, finds that
    # connection idle.
    assert seen.peak == 1


async def test_health_answers_200_right_after_the_backends_are_terminated(
    budget_database: tuple[str, str], tmp_path: Path
) -> None:
    url, application = budget_database
    process, base_url = launch(cwd=tmp_path, env=served_env(url))
    admin = await asyncpg.connect(libpq_dsn(postgres_url() or ""))
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            # Several connections in the pool, all idle.
            listed = await asyncio.gather(*(client.get("/api/alice/tasks") for _ in range(8)))
            assert {r.status_code for r in listed} == {200}
            assert (await client.get("/health")).status_code == 200
            time.sleep(1.1)  # past the outcome of that check: the next one asks the database
            opened = await count_connections(admin, application)
            terminated = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = $1",
                application,
            )
            assert [row[0] for row in terminated] == [True] * opened
            assert opened >= 2

            health = await client.get("/health")
            listing = await client.get("/api/alice/tasks")
            again = await client.get("/health")
    finally:
        await admin.close()
        process.terminate()
        process.wait(timeout=15)

    assert health.status_code == 200, health.text
    assert listing.status_code == 200, listing.text
    assert again.status_code == 200, again.text


async def test_a_503_from_health_is_logged(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = {
        **served_env(f"postgresql://postgres@127.0.0.1:{port}/test"),
        "DB_CONNECT_TIMEOUT": "1",
    }
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        process, base_url = launch(cwd=tmp_path, env=env, args=["--no-migrate"], stderr=stderr)
        try:
            response = httpx.get(f"{base_url}/health", timeout=30)
        finally:
            process.terminate()
            process.wait(timeout=15)

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "database unavailable: ConnectionRefusedError" in log.read_text()
