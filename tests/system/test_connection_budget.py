"""A worker never holds more PostgreSQL connections than its pool allows, whatever arrives: a
flood of anonymous `/health` probes beside API requests, on a served process, included."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.databases import (
    POSTGRES_ENV,
    create_postgres_database,
    drop_postgres_database,
    libpq_dsn,
    postgres_url,
)
from tests.support.processes import launch

POOL_SIZE = 3
MAX_OVERFLOW = 2
PROBES = 300


@pytest.fixture
async def budget_database() -> AsyncIterator[tuple[str, str]]:
    """A fresh database, and a URL naming it whose connections carry an application name of
    their own (so `pg_stat_activity` shows exactly the served process's connections)."""
    if postgres_url() is None:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    name = f"todo_budget_{uuid.uuid4().hex[:8]}"
    url = await create_postgres_database(name)
    application = f"todo-budget-{uuid.uuid4().hex[:8]}"
    try:
        yield (
            make_url(url)
            .update_query_dict({"application_name": application})
            .render_as_string(hide_password=False),
            application,
        )
    finally:
        await drop_postgres_database(name)


async def count_connections(admin: asyncpg.Connection, application: str) -> int:
    count: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application
    )
    return count


@dataclass
class Connections:
    """What `watching_connections` saw: the most at once, and how many were left after."""

    peak: int = 0
    after: int = 0


@asynccontextmanager
async def watching_connections(application: str) -> AsyncIterator[Connections]:
    """Counts `application`'s PostgreSQL connections every 2 ms while the block runs."""
    admin = await asyncpg.connect(libpq_dsn(postgres_url() or ""))
    seen = Connections()
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            seen.peak = max(seen.peak, await count_connections(admin, application))
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    try:
        yield seen
    finally:
        done.set()
        await watcher
        seen.after = await count_connections(admin, application)
        await admin.close()


@pytest.mark.direct_postgres
async def test_a_flood_of_health_probes_and_requests_stays_within_the_pool(
    budget_database: tuple[str, str], tmp_path: Path
) -> None:
    url, application = budget_database
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": url,
        "DB_POOL_SIZE": str(POOL_SIZE),
        "DB_MAX_OVERFLOW": str(MAX_OVERFLOW),
    }
    process, base_url = launch(cwd=tmp_path, env=env)
    try:
        async with watching_connections(application) as seen:
            limits = httpx.Limits(max_connections=PROBES, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
                for _ in range(3):
                    # Probes and API requests at once: each kind alone could fill its own pool.
                    paths = ["/health", "/api/alice/tasks"] * (PROBES // 2)
                    responses = await asyncio.gather(*(client.get(path) for path in paths))
                    assert [r.status_code for r in responses] == [200] * len(paths)
    finally:
        process.terminate()
        process.wait(timeout=15)

    # The flood used the pool (it opened connections), and never more than it may.
    assert 1 <= seen.peak <= POOL_SIZE + MAX_OVERFLOW
    assert seen.after <= POOL_SIZE + MAX_OVERFLOW
