"""Versions and ETags: every change adds one to the version, and a single-task response carries
the strong ETag of its version; the OpenAPI document declares them."""

from __future__ import annotations

import httpx
import pytest

from tests.support.conditional import COMPLETE, ITEM, assert_tagged, read, task_at_version, url
from tests.support.factories import JSON, create_task


class TestVersion:
    async def test_new_task_is_at_version_one(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/alice/tasks", json={"title": "New"})

        body = assert_tagged(response, 201)
        assert body["version"] == 1
        assert response.headers["etag"] == '"1"'

    async def test_get_carries_the_etag_of_its_version(self, client: httpx.AsyncClient) -> None:
        task = await task_at_version(client, 3)

        response = await client.get(url(task))

        assert response.headers["etag"] == '"3"'
        assert assert_tagged(response) == task

    async def test_every_change_adds_one(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client, title="Start")
        steps = [
            ("PUT", "", {"title": "Put"}),
            ("PATCH", "", {"description": None}),
            ("PATCH", "/complete", None),
            ("PATCH", "/complete", {"completed": False}),
            ("PATCH", "", {"tags": ["home"], "priority": "low"}),
        ]

        for expected, (method, suffix, body) in enumerate(steps, start=2):
            response = await client.request(method, url(task, suffix), json=body)
            changed = assert_tagged(response)
            assert changed["version"] == expected, (method, suffix, body)
            assert changed["updated_at"] > task["updated_at"]
            task = changed

        assert await read(client, task) == task

    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("PATCH", "", {"title": "Same"}),
            ("PUT", "", {"title": "Same"}),
            ("PATCH", "", {}),
            ("PUT", "", {}),
            ("PATCH", "", {"completed": True}),
            ("PATCH", "", {"title": "Same", "completed": True, "priority": "medium"}),
            ("PATCH", "/complete", {"completed": True}),
        ],
    )
    async def test_an_update_that_changes_nothing_keeps_version_and_updated_at(
        self, client: httpx.AsyncClient, method: str, suffix: str, body: JSON
    ) -> None:
        task = await create_task(client, title="Same", completed=True)

        response = await client.request(method, url(task, suffix), json=body)

        assert assert_tagged(response) == task
        assert await read(client, task) == task

    async def test_toggle_always_changes_the_version(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client, completed=False)

        first = assert_tagged(await client.patch(url(task, "/complete")))
        second = assert_tagged(await client.patch(url(task, "/complete")))

        assert (first["completed"], first["version"]) == (True, 2)
        assert (second["completed"], second["version"]) == (False, 3)
        assert second["updated_at"] > first["updated_at"] > task["updated_at"]

    async def test_without_if_match_the_last_write_wins(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client, title="Original")

        first = await client.patch(url(task), json={"title": "First"})
        second = await client.patch(url(task), json={"title": "Second"})

        assert assert_tagged(first)["version"] == 2
        assert assert_tagged(second)["version"] == 3
        stored = await read(client, task)
        assert (stored["title"], stored["version"]) == ("Second", 3)

    async def test_lists_and_delete_are_not_tagged(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client)

        listed = await client.get("/api/alice/tasks")
        deleted = await client.delete(url(task))

        assert listed.status_code == 200
        assert [row["version"] for row in listed.json()] == [1]
        assert deleted.status_code == 204


class TestOpenAPI:
    @pytest.fixture
    async def document(self, client: httpx.AsyncClient) -> JSON:
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        body: JSON = response.json()
        return body

    @staticmethod
    def header_parameters(operation: JSON) -> set[str]:
        return {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}

    async def test_create_declares_the_etag_it_sends(self, document: JSON) -> None:
        created = document["paths"]["/api/{user_id}/tasks"]["post"]["responses"]["201"]

        assert "ETag" in created["headers"]

    async def test_get_declares_if_none_match_and_not_modified(self, document: JSON) -> None:
        operation = document["paths"][ITEM]["get"]

        assert "If-None-Match" in self.header_parameters(operation)
        assert "If-Match" not in self.header_parameters(operation)
        assert "ETag" in operation["responses"]["304"]["headers"]

    @pytest.mark.parametrize(
        ("path", "method"),
        [(ITEM, "put"), (ITEM, "patch"), (COMPLETE, "patch"), (ITEM, "delete")],
    )
    async def test_writes_declare_if_match_and_precondition_failed(
        self, document: JSON, path: str, method: str
    ) -> None:
        operation = document["paths"][path][method]

        assert "If-Match" in self.header_parameters(operation)
        failed = operation["responses"]["412"]
        assert "ETag" in failed["headers"]
        assert "application/problem+json" in failed["content"]

    @pytest.mark.parametrize(
        ("path", "method"),
        [(ITEM, "get"), (ITEM, "put"), (ITEM, "patch"), (COMPLETE, "patch")],
    )
    async def test_single_task_success_declares_etag(
        self, document: JSON, path: str, method: str
    ) -> None:
        assert "ETag" in document["paths"][path][method]["responses"]["200"]["headers"]
