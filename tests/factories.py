"""Small builders for test data."""

from __future__ import annotations

from typing import Any

import httpx

JSON = dict[str, Any]


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
