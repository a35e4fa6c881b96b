"""The task endpoints, row by row of DESIGN.md §3-§4."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest

from tests.support.factories import RFC3339_UTC, TASK_FIELDS, assert_problem, create_task


def parse_ts(value: str) -> datetime:
    assert RFC3339_UTC.match(value), value
    return datetime.fromisoformat(value)


class TestCreateTask:
    async def test_creates_a_task_with_server_fields(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/alice/tasks", json={"title": "  Buy milk  ", "description": "2 litres\nfull fat"}
        )

        assert response.status_code == 201
        body = response.json()
        assert set(body) == TASK_FIELDS
        assert uuid.UUID(body["id"]).version == 4
        assert body["user_id"] == "alice"
        assert body["title"] == "Buy milk"
        assert body["description"] == "2 litres\nfull fat"
        assert body["completed"] is False
        assert parse_ts(body["created_at"]) == parse_ts(body["updated_at"])
        assert response.headers["location"] == f"/api/alice/tasks/{body['id']}"
        assert response.headers["content-type"] == "application/json"

    async def test_created_task_can_be_read_back(self, client: httpx.AsyncClient) -> None:
        created = await create_task(client, title="Read me", completed=True)

        response = await client.get(f"/api/alice/tasks/{created['id']}")

        assert response.status_code == 200
        assert response.json() == created

    async def test_read_only_and_unknown_fields_are_ignored(
        self, client: httpx.AsyncClient
    ) -> None:
        forged_id = str(uuid.uuid4())
        response = await client.post(
            "/api/alice/tasks",
            json={
                "title": "Mine",
                "id": forged_id,
                "user_id": "mallory",
                "created_at": "2000-01-01T00:00:00Z",
                "updated_at": "2000-01-01T00:00:00Z",
                "colour": "red",
            },
        )

        assert response.status_code == 201
        body = response.json()
        assert body["id"] != forged_id
        assert body["user_id"] == "alice"
        assert parse_ts(body["created_at"]).year >= 2026
        assert "colour" not in body
        assert (await client.get("/api/mallory/tasks")).json() == []

    @pytest.mark.parametrize(
        ("user_id", "encoded"),
        [("a%3Fb", "a%3Fb"), ("a%23b", "a%23b"), ("a%25b", "a%25b"), ("a:b@c", "a:b@c")],
    )
    async def test_location_is_a_usable_url(
        self, client: httpx.AsyncClient, user_id: str, encoded: str
    ) -> None:
        response = await client.post(f"/api/{user_id}/tasks", json={"title": "Odd owner"})

        assert response.status_code == 201
        location = response.headers["location"]
        assert location == f"/api/{encoded}/tasks/{response.json()['id']}"
        assert (await client.get(location)).json() == response.json()

    async def test_description_defaults_to_null(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/alice/tasks", json={"title": "Only a title"})

        assert response.status_code == 201
        assert response.json()["description"] is None
        assert response.json()["completed"] is False


class TestListTasks:
    async def test_unknown_user_has_no_tasks(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/nobody/tasks")

        assert response.status_code == 200
        assert response.json() == []

    async def test_lists_newest_first(self, client: httpx.AsyncClient) -> None:
        titles = [f"task {n}" for n in range(5)]
        for title in titles:
            await create_task(client, title=title)

        response = await client.get("/api/alice/tasks")

        assert response.status_code == 200
        assert [task["title"] for task in response.json()] == list(reversed(titles))

    async def test_lists_only_the_users_own_tasks(self, client: httpx.AsyncClient) -> None:
        mine = await create_task(client, "alice", title="mine")
        await create_task(client, "bob", title="theirs")

        response = await client.get("/api/alice/tasks")

        assert response.json() == [mine]


class TestGetTask:
    async def test_missing_task_is_not_found(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"/api/alice/tasks/{uuid.uuid4()}")

        assert_problem(response, 404)

    @pytest.mark.parametrize("task_id", ["not-a-uuid", "123", "0" * 40, "%20"])
    async def test_non_uuid_id_is_not_found(self, client: httpx.AsyncClient, task_id: str) -> None:
        response = await client.get(f"/api/alice/tasks/{task_id}")

        assert_problem(response, 404)

    @pytest.mark.parametrize(
        "spelling",
        [
            lambda i: i.replace("-", ""),
            lambda i: "{" + i + "}",
            lambda i: "urn:uuid:" + i,
        ],
        ids=["no-hyphens", "braces", "urn"],
    )
    async def test_only_the_canonical_spelling_names_a_task(
        self, client: httpx.AsyncClient, spelling: Callable[[str], str]
    ) -> None:
        task = await create_task(client)

        response = await client.get(f"/api/alice/tasks/{spelling(task['id'])}")

        assert_problem(response, 404)


class TestIsolation:
    """Another user's task id under your own path is 404 for every operation, and untouched."""

    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("GET", "", None),
            ("PUT", "", {"title": "stolen"}),
            ("PATCH", "", {"title": "stolen"}),
            ("PATCH", "/complete", None),
            ("PATCH", "/complete", {"completed": True}),
            ("DELETE", "", None),
        ],
    )
    async def test_other_users_task_is_not_found(
        self, client: httpx.AsyncClient, method: str, suffix: str, body: dict[str, object] | None
    ) -> None:
        theirs = await create_task(client, "bob", title="bob's")
        missing = await client.request(
            method, f"/api/alice/tasks/{uuid.uuid4()}{suffix}", json=body
        )

        response = await client.request(
            method, f"/api/alice/tasks/{theirs['id']}{suffix}", json=body
        )

        problem = assert_problem(response, 404)
        assert {k: v for k, v in problem.items() if k != "request_id"} == {
            k: v for k, v in missing.json().items() if k != "request_id"
        } | {"instance": response.request.url.path}
        assert (await client.get(f"/api/bob/tasks/{theirs['id']}")).json() == theirs


class TestUpdateTask:
    @pytest.mark.parametrize("method", ["PUT", "PATCH"])
    async def test_omitted_fields_keep_their_value(
        self, client: httpx.AsyncClient, method: str
    ) -> None:
        task = await create_task(client, title="Old", description="keep me", completed=True)

        response = await client.request(
            method, f"/api/alice/tasks/{task['id']}", json={"title": " New "}
        )

        assert response.status_code == 200
        body = response.json()
        assert body["title"] == "New"
        assert body["description"] == "keep me"
        assert body["completed"] is True
        assert body["created_at"] == task["created_at"]
        assert parse_ts(body["updated_at"]) > parse_ts(task["updated_at"])
        assert (await client.get(f"/api/alice/tasks/{task['id']}")).json() == body

    @pytest.mark.parametrize("method", ["PUT", "PATCH"])
    async def test_null_description_clears_it(self, client: httpx.AsyncClient, method: str) -> None:
        task = await create_task(client, description="remove me")

        response = await client.request(
            method, f"/api/alice/tasks/{task['id']}", json={"description": None}
        )

        assert response.status_code == 200
        assert response.json()["description"] is None
        assert response.json()["title"] == task["title"]

    @pytest.mark.parametrize("method", ["PUT", "PATCH"])
    @pytest.mark.parametrize("field", ["title", "completed"])
    async def test_null_title_or_completed_is_refused(
        self, client: httpx.AsyncClient, method: str, field: str
    ) -> None:
        task = await create_task(client)

        response = await client.request(
            method, f"/api/alice/tasks/{task['id']}", json={field: None}
        )

        assert_problem(response, 400, fields=[field])
        assert (await client.get(f"/api/alice/tasks/{task['id']}")).json() == task

    @pytest.mark.parametrize("method", ["PUT", "PATCH"])
    async def test_sets_every_field(self, client: httpx.AsyncClient, method: str) -> None:
        task = await create_task(client)

        response = await client.request(
            method,
            f"/api/alice/tasks/{task['id']}",
            json={"title": "T", "description": "D", "completed": True},
        )

        body = response.json()
        assert (body["title"], body["description"], body["completed"]) == ("T", "D", True)

    @pytest.mark.parametrize("method", ["PUT", "PATCH"])
    @pytest.mark.parametrize(
        "changes", [{}, {"title": "Buy milk"}, {"description": "2 litres", "completed": False}]
    )
    async def test_no_op_update_leaves_updated_at_alone(
        self, client: httpx.AsyncClient, method: str, changes: dict[str, object]
    ) -> None:
        task = await create_task(client, title="Buy milk", description="2 litres")

        response = await client.request(method, f"/api/alice/tasks/{task['id']}", json=changes)

        assert response.status_code == 200
        assert response.json() == task

    async def test_updated_at_strictly_increases_across_changes(
        self, client: httpx.AsyncClient
    ) -> None:
        task = await create_task(client)
        stamps = [parse_ts(task["updated_at"])]
        for n in range(5):
            response = await client.patch(f"/api/alice/tasks/{task['id']}", json={"title": f"v{n}"})
            stamps.append(parse_ts(response.json()["updated_at"]))
        response = await client.patch(f"/api/alice/tasks/{task['id']}/complete")
        stamps.append(parse_ts(response.json()["updated_at"]))

        assert stamps == sorted(stamps)
        assert len(set(stamps)) == len(stamps)
        assert response.json()["created_at"] == task["created_at"]

    async def test_missing_task_is_not_found(self, client: httpx.AsyncClient) -> None:
        response = await client.put(f"/api/alice/tasks/{uuid.uuid4()}", json={"title": "x"})

        assert_problem(response, 404)


class TestCompleteTask:
    async def test_without_body_flips_completion(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client)
        url = f"/api/alice/tasks/{task['id']}/complete"

        first = await client.patch(url)
        second = await client.patch(url)

        assert first.status_code == 200
        assert first.json()["completed"] is True
        assert second.json()["completed"] is False
        assert parse_ts(second.json()["updated_at"]) > parse_ts(first.json()["updated_at"])

    @pytest.mark.parametrize("value", [True, False])
    async def test_explicit_value_is_idempotent(
        self, client: httpx.AsyncClient, value: bool
    ) -> None:
        task = await create_task(client, completed=not value)
        url = f"/api/alice/tasks/{task['id']}/complete"

        first = await client.patch(url, json={"completed": value})
        second = await client.patch(url, json={"completed": value})

        assert first.json()["completed"] is value
        assert second.json() == first.json()

    @pytest.mark.parametrize(
        "body", [{}, {"completed": None}, {"completed": "yes"}, {"completed": 1}]
    )
    async def test_invalid_body_is_refused(
        self, client: httpx.AsyncClient, body: dict[str, object]
    ) -> None:
        task = await create_task(client)

        response = await client.patch(f"/api/alice/tasks/{task['id']}/complete", json=body)

        assert_problem(response, 400, fields=["completed"])
        assert (await client.get(f"/api/alice/tasks/{task['id']}")).json() == task


class TestDeleteTask:
    async def test_deletes_with_no_content(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client)

        response = await client.delete(f"/api/alice/tasks/{task['id']}")

        assert response.status_code == 204
        assert response.content == b""
        assert_problem(await client.get(f"/api/alice/tasks/{task['id']}"), 404)
        assert (await client.get("/api/alice/tasks")).json() == []

    async def test_deleting_twice_is_not_found(self, client: httpx.AsyncClient) -> None:
        task = await create_task(client)
        await client.delete(f"/api/alice/tasks/{task['id']}")

        response = await client.delete(f"/api/alice/tasks/{task['id']}")

        assert_problem(response, 404)
