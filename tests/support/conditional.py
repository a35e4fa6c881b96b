"""Conditional requests under test: entity tags sent byte for byte, responses checked for the
strong ETag of their version, tasks brought to a version, and every kind of single-task write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.factories import JSON, assert_problem, create_task

ITEM = "/api/{user_id}/tasks/{task_id}"
COMPLETE = "/api/{user_id}/tasks/{task_id}/complete"
PRECONDITION_FAILED = "/problems/precondition-failed"


def url(task: JSON, suffix: str = "") -> str:
    return f"/api/{task['user_id']}/tasks/{task['id']}{suffix}"


def etag(version: int) -> str:
    return f'"{version}"'


def header(name: str, value: str) -> dict[bytes, bytes]:
    """One request header, sent byte for byte (latin-1), so any value can be tried."""
    return {name.encode("ascii"): value.encode("latin-1")}


def if_match(value: str) -> dict[bytes, bytes]:
    return header("If-Match", value)


def if_none_match(value: str) -> dict[bytes, bytes]:
    return header("If-None-Match", value)


def assert_tagged(response: httpx.Response, status: int = 200) -> JSON:
    """A single-task response whose strong `ETag` is the body's version."""
    assert response.status_code == status, response.text
    body: JSON = response.json()
    assert response.headers["etag"] == etag(body["version"])
    return body


async def read(client: httpx.AsyncClient, task: JSON) -> JSON:
    return assert_tagged(await client.get(url(task)))


async def task_at_version(client: httpx.AsyncClient, version: int, **fields: Any) -> JSON:
    """A fresh task of alice's, changed until it reaches `version`."""
    task = await create_task(client, **fields)
    for n in range(2, version + 1):
        task = assert_tagged(await client.patch(url(task), json={"title": f"Revision {n}"}))
    assert task["version"] == version
    return task


def assert_precondition_failed(response: httpx.Response, current: int) -> None:
    body = assert_problem(response, 412)
    assert body["type"] == PRECONDITION_FAILED
    assert response.headers["etag"] == etag(current)


@dataclass(frozen=True)
class Write:
    """One kind of single-task write, and the status it answers with on success."""

    name: str
    method: str
    suffix: str
    body: JSON | None
    status: int

    async def send(
        self, client: httpx.AsyncClient, task: JSON, headers: dict[bytes, bytes] | None = None
    ) -> httpx.Response:
        return await client.request(
            self.method, url(task, self.suffix), json=self.body, headers=headers
        )


WRITES = [
    Write("put", "PUT", "", {"title": "Changed"}, 200),
    Write("patch", "PATCH", "", {"title": "Changed", "priority": "high"}, 200),
    Write("toggle", "PATCH", "/complete", None, 200),
    Write("complete", "PATCH", "/complete", {"completed": True}, 200),
    Write("delete", "DELETE", "", None, 204),
]
EVERY_WRITE = pytest.mark.parametrize("write", WRITES, ids=[w.name for w in WRITES])


async def assert_written(
    client: httpx.AsyncClient, write: Write, before: JSON, response: httpx.Response
) -> None:
    """`write` succeeded on `before` and changed it: version +1, or gone for a delete."""
    if write.status == 204:
        assert response.status_code == 204, response.text
        assert response.content == b""
        assert_problem(await client.get(url(before)), 404)
        return
    after = assert_tagged(response)
    assert after["version"] == before["version"] + 1
    assert after["updated_at"] > before["updated_at"]
    assert await read(client, before) == after


async def assert_unwritten(client: httpx.AsyncClient, before: JSON) -> None:
    """The task is exactly as it was: same fields, version and updated_at."""
    assert await read(client, before) == before
