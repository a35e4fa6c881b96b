"""The protected /api operations, each with how to call it and what it answers when allowed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from tests.support.factories import JSON


@dataclass(frozen=True)
class Operation:
    """One protected /api operation: how to call it and what it answers when allowed."""

    name: str
    method: str
    path: str  # with {user_id} and, for one task, {task_id}
    body: JSON | None
    success: int
    query: str = ""

    def url(self, user_id: str, task_id: str) -> str:
        return self.path.format(user_id=user_id, task_id=task_id) + self.query

    async def send(
        self,
        client: httpx.AsyncClient,
        user_id: str,
        task_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        return await client.request(
            self.method, self.url(user_id, task_id), json=self.body, headers=dict(headers or {})
        )


_TASKS = "/api/{user_id}/tasks"
_TASK = "/api/{user_id}/tasks/{task_id}"
OPERATIONS = [
    Operation("list", "GET", _TASKS, None, 200),
    Operation("create", "POST", _TASKS, {"title": "Planted"}, 201),
    Operation("get", "GET", _TASK, None, 200),
    Operation("put", "PUT", _TASK, {"title": "Overwritten", "completed": True}, 200),
    Operation("patch", "PATCH", _TASK, {"title": "Patched", "description": None}, 200),
    Operation("complete", "PATCH", _TASK + "/complete", {"completed": True}, 200),
    Operation("delete", "DELETE", _TASK, None, 204),
    Operation("stats", "GET", _TASKS + "/stats", None, 200),
    Operation("clear-completed", "DELETE", _TASKS, None, 200, "?completed=true"),
]
OPERATION_IDS = [operation.name for operation in OPERATIONS]
