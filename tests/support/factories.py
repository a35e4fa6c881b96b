"""Small builders for test data."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from todo_api.db.database import Database
from todo_api.schemas.listing import TaskListQuery
from todo_api.services import listing

JSON = dict[str, Any]


# Every field of a task as the API returns it, and how it writes timestamps (UTC, `Z`).
TASK_FIELDS = {
    "id",
    "user_id",
    "title",
    "description",
    "completed",
    "priority",
    "due_at",
    "tags",
    "completed_at",
    "created_at",
    "updated_at",
    "version",
}
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def task_payload(**overrides: Any) -> JSON:
    payload: JSON = {"title": "Buy milk", "description": "2 litres", "completed": False}
    payload.update(overrides)
    return payload


async def create_task(client: httpx.AsyncClient, user_id: str = "alice", **overrides: Any) -> JSON:
    """Create a task through the API and return its body."""
    response = await client.post(f"/api/{user_id}/tasks", json=task_payload(**overrides))
    assert response.status_code == 201, response.text
    body: JSON = response.json()
    return body


def assert_problem(
    response: httpx.Response, status: int, *, fields: list[str] | None = None
) -> JSON:
    """The response is an RFC 9457 problem with `status`; for 400, exactly `fields` fail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: JSON = response.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    assert isinstance(body["title"], str)
    assert body["title"]
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["x-request-id"]
    if fields is not None:
        assert sorted(error["field"] for error in body["errors"]) == sorted(fields)
    return body


async def stored_tasks(db: Database, user_id: str) -> list[Any]:
    """A user's tasks as the service lists them by default (newest first), at most 500."""
    page = await listing.list_tasks(db, user_id=user_id, query=TaskListQuery(limit=500))
    return list(page.rows)


def unique_user(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
