"""SIGTERM during a burst of writes: the server finishes what is in flight, and every write it
acknowledged is stored (checked by a fresh server on the same database)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import create_postgres_database, drop_postgres_database
from tests.support.processes import launch

BURST = 120
# SIGTERM goes out once this many creates have been answered: the rest are in flight or queued.
ANSWERED_BEFORE_SIGTERM = 15


@pytest.fixture
async def database_url(backend: str, worker_tag: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'todo.db'}"
        return
    name = f"todo_shutdown_{worker_tag}"
    url = await create_postgres_database(name)
    try:
        yield url
    finally:
        await drop_postgres_database(name)


async def test_every_acknowledged_write_survives_sigterm(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "RATE_LIMIT": "0", "LOG_LEVEL": "WARNING"}
    process, base_url = launch(cwd=tmp_path, env=env)
    answered = 0
    enough = asyncio.Event()

    async def create(http: httpx.AsyncClient, n: int) -> httpx.Response | Exception:
        nonlocal answered
        try:
            response = await http.post("/api/alice/tasks", json={"title": f"burst {n}"})
        except httpx.HTTPError as exc:
            return exc
        finally:
            answered += 1
            if answered >= ANSWERED_BEFORE_SIGTERM:
                enough.set()
        return response

    try:
        limits = httpx.Limits(max_connections=30)
        async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
            burst = [asyncio.ensure_future(create(http, n)) for n in range(BURST)]
            await enough.wait()
            process.send_signal(signal.SIGTERM)
            outcomes = await asyncio.gather(*burst)
        exit_code = await asyncio.to_thread(process.wait, 40)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    acknowledged = {
        o.json()["id"]: o.json()["title"]
        for o in outcomes
        if isinstance(o, httpx.Response) and o.status_code == 201
    }
    others = [o for o in outcomes if not (isinstance(o, httpx.Response) and o.status_code == 201)]
    # Anything not acknowledged was refused as a whole: no answer, or a 503 while stopping.
    assert all(
        isinstance(o, httpx.HTTPError) or (isinstance(o, httpx.Response) and o.status_code == 503)
        for o in others
    ), others
    # Uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert exit_code in {0, -signal.SIGTERM}
    assert len(acknowledged) >= ANSWERED_BEFORE_SIGTERM - len(others)

    process, base_url = launch(cwd=tmp_path, env=env)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            stored = (await http.get("/api/alice/tasks", params={"limit": "500"})).json()
    finally:
        process.terminate()
        process.wait(timeout=10)

    by_id = {task["id"]: task["title"] for task in stored}
    assert {task_id: by_id.get(task_id) for task_id in acknowledged} == acknowledged
