"""The practical ceiling of this stack: bare Starlette + asyncpg + orjson serving the task
endpoints with the same SQL as the service, and nothing else (no ORM, no validation, no auth).

Run by `bench/run.py`; reads BASELINE_DATABASE_URL (a postgresql:// URL).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# The service's SQL, written out by hand: the same columns (the priority by name), the same
# first-page query (101 rows, to see whether a next page follows) and the same timestamps.
COLUMNS = (
    "id, user_id, title, description, completed, "
    "CASE priority WHEN 1 THEN 'low' WHEN 2 THEN 'medium' WHEN 3 THEN 'high' END AS priority, "
    "due_at, tags, completed_at, created_at, updated_at, version"
)
RETURNING = " RETURNING " + COLUMNS
SELECT = "SELECT " + COLUMNS + " FROM tasks"
LIVE = "user_id = $1 AND deleted_at IS NULL"
LIST = SELECT + f" WHERE {LIVE} ORDER BY created_at DESC, id DESC LIMIT 101"
GET = SELECT + f" WHERE {LIVE} AND id = $2"
# A change's instant comes from the owner's clock, as the service takes it (migration 0005).
INSTANT = "WITH instant AS (SELECT todo_change_instant({owner}, clock_timestamp()) AS at) "
AT = "(SELECT at FROM instant)"
CREATE = (
    INSTANT.format(owner="$2")
    + "INSERT INTO tasks (id, user_id, title, description, completed, priority, due_at, tags, "
    "tag_keys, completed_at, created_at, updated_at, version) "
    f"VALUES ($1, $2, $3, $4, $5, 2, NULL, '{{}}', '{{}}', NULL, {AT}, {AT}, 1)" + RETURNING
)
TOGGLE = (
    INSTANT.format(owner="$1")
    + "UPDATE tasks SET completed = NOT completed, completed_at = CASE WHEN completed THEN NULL "
    f"ELSE {AT} END, updated_at = {AT}, version = version + 1 WHERE {LIVE} AND id = $2" + RETURNING
)
RENAME = (
    INSTANT.format(owner="$1")
    + "UPDATE tasks SET title = $3::varchar, updated_at = CASE WHEN title IS DISTINCT FROM "
    f"$3::varchar THEN {AT} ELSE updated_at END, version = CASE WHEN title IS DISTINCT FROM "
    f"$3::varchar THEN version + 1 ELSE version END WHERE {LIVE} AND id = $2" + RETURNING
)

pool: asyncpg.Pool | None = None


def _json(content: Any, status: int = 200) -> Response:
    body = orjson.dumps(content, default=str, option=orjson.OPT_UTC_Z)
    return Response(body, status_code=status, media_type="application/json")


def _row(record: asyncpg.Record | None) -> Response:
    if record is None:
        return _json({"status": 404}, 404)
    return _json(dict(record))


async def list_tasks(request: Request) -> Response:
    assert pool is not None
    rows = await pool.fetch(LIST, request.path_params["user_id"])
    return _json([dict(row) for row in rows[:100]])


async def create_task(request: Request) -> Response:
    assert pool is not None
    data = orjson.loads(await request.body())
    row = await pool.fetchrow(
        CREATE,
        uuid.uuid4(),
        request.path_params["user_id"],
        data["title"],
        data.get("description"),
        data.get("completed", False),
    )
    return _json(dict(row), 201)


async def get_task(request: Request) -> Response:
    assert pool is not None
    params = request.path_params
    return _row(await pool.fetchrow(GET, params["user_id"], uuid.UUID(params["task_id"])))


async def patch_task(request: Request) -> Response:
    assert pool is not None
    params = request.path_params
    data = orjson.loads(await request.body())
    task_id = uuid.UUID(params["task_id"])
    return _row(await pool.fetchrow(RENAME, params["user_id"], task_id, data["title"]))


async def toggle_task(request: Request) -> Response:
    assert pool is not None
    params = request.path_params
    return _row(await pool.fetchrow(TOGGLE, params["user_id"], uuid.UUID(params["task_id"])))


async def _no_reset(_connection: asyncpg.Connection) -> None:
    return None


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    global pool
    size = int(os.environ.get("BASELINE_POOL_SIZE", "10"))
    # No per-release reset query: the service runs none either, so this is the stack's limit.
    pool = await asyncpg.create_pool(
        os.environ["BASELINE_DATABASE_URL"], min_size=size, max_size=size, reset=_no_reset
    )
    yield
    await pool.close()


app = Starlette(
    routes=[
        Route("/api/{user_id}/tasks", list_tasks, methods=["GET"]),
        Route("/api/{user_id}/tasks", create_task, methods=["POST"]),
        Route("/api/{user_id}/tasks/{task_id}", get_task, methods=["GET"]),
        Route("/api/{user_id}/tasks/{task_id}", patch_task, methods=["PATCH"]),
        Route("/api/{user_id}/tasks/{task_id}/complete", toggle_task, methods=["PATCH"]),
    ],
    lifespan=lifespan,
)
