"""Where one request's time goes: CPU per call of each layer, measured in-process.

Needs the database `make bench` seeds (BENCH_DATABASE_URL). Prints the best of three runs of
3,000 calls each: raw asyncpg, the service call, a no-op route through the app's middleware and
routing, and the full GET of a task.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import jwt
from sqlalchemy.engine import make_url
from starlette.responses import Response

from todo_api.config import Settings
from todo_api.db.connect import create_database
from todo_api.main import create_app
from todo_api.observability.logging import configure_logging
from todo_api.services import tasks as service

SECRET = "bench-secret-that-is-at-least-32-bytes-long"
CALLS = 3000
URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/todo_bench")


async def best_of_three(label: str, call: Callable[[], Awaitable[Any]]) -> None:
    for _ in range(300):
        await call()
    runs = []
    for _ in range(3):
        began = time.process_time()
        for _ in range(CALLS):
            await call()
        runs.append((time.process_time() - began) / CALLS * 1e6)
    print(f"{label:<48} {min(runs):6.0f} us")


def asgi_get(app: Any, path: str, token: str) -> Callable[[], Awaitable[None]]:
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]

    async def call() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        assert sent[0]["status"] == 200, sent

    return call


async def main() -> None:
    dsn = make_url(URL).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    row = await conn.fetchrow("SELECT user_id, id FROM tasks WHERE description = 'seeded' LIMIT 1")
    user, task_id = row["user_id"], str(row["id"])
    query = "SELECT * FROM tasks WHERE user_id = $1 AND id = $2"
    await best_of_three(
        "raw asyncpg fetchrow", lambda: conn.fetchrow(query, user, uuid.UUID(task_id))
    )
    await conn.close()

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=URL,
        auth_jwt_secret=SECRET,
        environment="production",
        rate_limit="1000000/minute",  # one user in a tight loop; the limiter still runs
    )
    configure_logging(settings)
    logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))
    app = create_app(settings)
    db = create_database(settings)
    app.state.database = db

    async def noop() -> Response:
        return Response(b"{}")

    app.add_api_route("/noop/{user_id}", noop)
    token = jwt.encode({"sub": user, "exp": int(time.time()) + 3600}, SECRET, "HS256")
    await best_of_three(
        "service.get_task", lambda: service.get_task(db, user_id=user, task_id=task_id)
    )
    await best_of_three("no-op route (middleware + routing)", asgi_get(app, f"/noop/{user}", token))
    await best_of_three(
        "GET /api/{user}/tasks/{id} (everything)",
        asgi_get(app, f"/api/{user}/tasks/{task_id}", token),
    )
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
