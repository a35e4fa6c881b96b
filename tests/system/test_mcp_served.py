"""`/mcp` end to end: the MCP SDK's own client over real HTTP against `todo-api serve` with two
workers, in both ways the client connects (the initialize handshake and the 2026-07-28
revision), on SQLite and PostgreSQL: every tool, its refusals, isolation between users, and the
same tasks seen through `/api`."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # via mcp
from mcp import Client
from mcp.types import CallToolResult

from tests.support.databases import create_postgres_database, drop_postgres_database, postgres_url
from tests.support.mcp import MODES, mcp_client
from tests.support.processes import launch
from tests.support.tokens import OTHER_SECRET, SECRET, bearer, hs256_token

TOOLS = {
    "list_tasks",
    "get_task",
    "add_task",
    "update_task",
    "set_completed",
    "delete_task",
    "task_stats",
    "clear_completed",
}
READ_ONLY = {"list_tasks", "get_task", "task_stats"}
DESTRUCTIVE = {"update_task", "delete_task", "clear_completed"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """`todo-api serve --workers 2` with authentication, on a database of its own."""
    backend: str = request.param
    tmp_path: Path = tmp_path_factory.mktemp("mcp")
    name = f"todo_mcp_{uuid.uuid4().hex[:8]}"
    if backend == "postgresql":
        if postgres_url() is None:
            pytest.skip("TEST_DATABASE_URL is not set")
        url = await create_postgres_database(name)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'todo.db'}"
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "DATABASE_URL": url,
        "AUTH_JWT_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "2",
        "DB_MAX_OVERFLOW": "0",
    }
    if backend == "postgresql" and "DB_POOLER" in os.environ:
        env["DB_POOLER"] = os.environ["DB_POOLER"]  # the suite runs through a pooler
    process, base_url = launch(cwd=tmp_path, env=env, args=["--workers", "2"])
    try:
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=15)
        if backend == "postgresql":
            await drop_postgres_database(name)


def user() -> tuple[str, str]:
    """A user of the test's own, and a token for it."""
    name = f"u{uuid.uuid4().hex[:10]}"
    return name, hs256_token(name, ttl=3600)


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def refused(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result: CallToolResult = await client.call_tool(tool, arguments)
    assert result.is_error
    assert result.structured_content is None
    text: str = result.content[0].text  # type: ignore[union-attr]
    assert "Traceback" not in text
    return text


@pytest.mark.parametrize("mode", MODES)
class TestTools:
    async def test_the_tools_are_listed_with_valid_schemas_and_no_user_argument(
        self, served: str, mode: str
    ) -> None:
        _, token = user()
        async with mcp_client(f"{served}/mcp", token=token, mode=mode) as client:  # type: ignore[arg-type]
            listed = (await client.list_tools()).tools

        assert {tool.name for tool in listed} == TOOLS
        for tool in listed:
            Draft202012Validator.check_schema(tool.input_schema)
            assert tool.output_schema is not None
            Draft202012Validator.check_schema(tool.output_schema)
            assert tool.input_schema["type"] == "object"
            assert not any("user" in name for name in tool.input_schema.get("properties", {}))
            assert tool.description
            assert tool.annotations is not None
            assert tool.annotations.read_only_hint is (tool.name in READ_ONLY)
            assert tool.annotations.destructive_hint is (tool.name in DESTRUCTIVE)
            assert tool.annotations.open_world_hint is False
        add = next(tool for tool in listed if tool.name == "add_task")
        assert add.input_schema["required"] == ["title"]
        assert add.input_schema["additionalProperties"] is False

    async def test_every_tool_does_what_it_says(self, served: str, mode: str) -> None:
        name, token = user()
        async with mcp_client(f"{served}/mcp", token=token, mode=mode) as client:  # type: ignore[arg-type]
            schemas = {tool.name: tool.output_schema for tool in (await client.list_tools()).tools}

            async def call(tool: str, arguments: dict[str, Any]) -> Any:
                result = await ok(client, tool, arguments)
                Draft202012Validator(schemas[tool]).validate(result)
                return result

            milk = await call(
                "add_task",
                {
                    "title": " Buy milk ",
                    "description": "2 litres",
                    "priority": "high",
                    "due_at": "2030-01-01",
                    "tags": ["home", "HOME", "errands"],
                },
            )
            assert milk["user_id"] == name
            assert (milk["title"], milk["priority"], milk["version"]) == ("Buy milk", "high", 1)
            assert milk["due_at"] == "2030-01-01T00:00:00Z"
            assert milk["tags"] == ["home", "errands"]
            bread = await call("add_task", {"title": "Bake bread"})

            assert await call("get_task", {"task_id": milk["id"]}) == milk
            first = await call("list_tasks", {"limit": 1})
            assert [task["id"] for task in first["tasks"]] == [bread["id"]]
            second = await call("list_tasks", {"limit": 1, "cursor": first["next_cursor"]})
            assert [task["id"] for task in second["tasks"]] == [milk["id"]]
            assert second["next_cursor"] is None
            tagged = await call("list_tasks", {"tag": ["Errands"], "priority": ["high"]})
            assert [task["id"] for task in tagged["tasks"]] == [milk["id"]]
            found = await call("list_tasks", {"q": "bread"})
            assert [task["id"] for task in found["tasks"]] == [bread["id"]]

            changed = await call(
                "update_task",
                {
                    "task_id": milk["id"],
                    "title": "Buy oat milk",
                    "description": None,
                    "expected_version": 1,
                },
            )
            assert (changed["title"], changed["description"], changed["version"]) == (
                "Buy oat milk",
                None,
                2,
            )
            assert changed["tags"] == milk["tags"]
            done = await call("set_completed", {"task_id": milk["id"], "completed": True})
            assert done["completed"] is True
            assert done["completed_at"] is not None
            again = await call("set_completed", {"task_id": milk["id"], "completed": True})
            assert again["version"] == done["version"]  # nothing changed: safe to retry
            stats = await call("task_stats", {})
            assert stats == {
                "total": 2,
                "completed": 1,
                "pending": 1,
                "overdue": 0,
                "by_priority": {"low": 0, "medium": 1, "high": 1},
            }
            assert await call("clear_completed", {}) == {"deleted": 1}
            assert await call("delete_task", {"task_id": bread["id"]}) == {
                "id": bread["id"],
                "deleted": True,
            }
            assert (await call("list_tasks", {}))["tasks"] == []
            synced = await call("list_tasks", {"include_deleted": True})
            assert {task["id"] for task in synced["tasks"]} == {milk["id"], bread["id"]}
            assert all(task["deleted"] is True for task in synced["tasks"])

    async def test_refusals_are_tool_errors_that_say_what_to_do(
        self, served: str, mode: str
    ) -> None:
        _, token = user()
        async with mcp_client(f"{served}/mcp", token=token, mode=mode) as client:  # type: ignore[arg-type]
            text = await refused(client, "add_task", {"title": "   "})
            assert text.startswith("Invalid arguments: title: must be 1-200 characters")
            assert "call add_task again" in text
            text = await refused(client, "add_task", {"title": "x", "priority": "urgent"})
            assert "priority:" in text
            text = await refused(client, "add_task", {"title": "x", "user_id": "bob"})
            assert "user_id: Extra inputs are not permitted" in text
            text = await refused(client, "list_tasks", {"cursor": "forged"})
            assert text.startswith("Invalid arguments: cursor:")
            text = await refused(client, "set_completed", {"task_id": str(uuid.uuid4())})
            assert "completed: Field required" in text

            missing = str(uuid.uuid4())
            for tool, arguments in (
                ("get_task", {}),
                ("update_task", {"title": "y"}),
                ("set_completed", {"completed": True}),
                ("delete_task", {}),
            ):
                text = await refused(client, tool, {"task_id": missing, **arguments})
                assert text.startswith("No task with this id exists for this user.")
                assert "list_tasks" in text
            assert (await refused(client, "get_task", {"task_id": "milk"})).startswith("No task")

            task = await ok(client, "add_task", {"title": "Draft"})
            await ok(client, "update_task", {"task_id": task["id"], "title": "Second draft"})
            for tool, arguments in (
                ("update_task", {"title": "Lost update"}),
                ("set_completed", {"completed": True}),
                ("delete_task", {}),
            ):
                text = await refused(
                    client, tool, {"task_id": task["id"], "expected_version": 1, **arguments}
                )
                assert text.startswith("Version conflict:")
                assert "now at version 2" in text
                assert "expected_version 2" in text
            assert (await ok(client, "get_task", {"task_id": task["id"]}))["title"] == (
                "Second draft"
            )
            text = await refused(client, "no_such_tool", {})
            assert "There is no tool named 'no_such_tool'" in text

    async def test_a_retried_add_task_with_the_same_key_creates_one_task(
        self, served: str, mode: str
    ) -> None:
        _, token = user()
        key = str(uuid.uuid4())
        async with mcp_client(f"{served}/mcp", token=token, mode=mode) as client:  # type: ignore[arg-type]
            arguments = {"title": "Call the plumber", "idempotency_key": key}
            first = await ok(client, "add_task", arguments)
            retried = await ok(client, "add_task", arguments)
            listed = await ok(client, "list_tasks", {})
            text = await refused(client, "add_task", {**arguments, "title": "Call the roofer"})

        assert retried == first
        assert [task["id"] for task in listed["tasks"]] == [first["id"]]
        assert "already used for a different request" in text


@pytest.mark.parametrize("mode", MODES)
async def test_one_token_never_reaches_another_users_tasks(served: str, mode: str) -> None:
    alice, alice_token = user()
    _, bob_token = user()
    async with mcp_client(f"{served}/mcp", token=alice_token, mode=mode) as client:  # type: ignore[arg-type]
        task = await ok(client, "add_task", {"title": "Alice's secret", "idempotency_key": "k"})
        await ok(client, "set_completed", {"task_id": task["id"], "completed": True})
    async with mcp_client(f"{served}/mcp", token=bob_token, mode=mode) as client:  # type: ignore[arg-type]
        assert (await ok(client, "list_tasks", {"include_deleted": True}))["tasks"] == []
        assert (await ok(client, "task_stats", {}))["total"] == 0
        for tool, arguments in (
            ("get_task", {}),
            ("update_task", {"title": "Bob was here"}),
            ("set_completed", {"completed": False}),
            ("delete_task", {}),
        ):
            text = await refused(client, tool, {"task_id": task["id"], **arguments})
            assert text.startswith("No task with this id exists for this user.")
        assert await ok(client, "clear_completed", {}) == {"deleted": 0}
        # Bob's key is Bob's: the same key creates Bob's own task.
        own = await ok(client, "add_task", {"title": "Bob's", "idempotency_key": "k"})
        assert own["id"] != task["id"]
    async with mcp_client(f"{served}/mcp", token=alice_token, mode=mode) as client:  # type: ignore[arg-type]
        kept = await ok(client, "get_task", {"task_id": task["id"]})
    assert kept["user_id"] == alice
    assert (kept["title"], kept["completed"]) == ("Alice's secret", True)


@pytest.mark.parametrize("mode", MODES)
async def test_mcp_and_rest_are_the_same_tasks(served: str, mode: str) -> None:
    name, token = user()
    api = f"{served}/api/{name}/tasks"
    async with (
        mcp_client(f"{served}/mcp", token=token, mode=mode) as client,  # type: ignore[arg-type]
        httpx.AsyncClient(headers=bearer(token), timeout=10) as http,
    ):
        made = await ok(client, "add_task", {"title": "From the agent", "tags": ["chat"]})
        response = await http.get(f"{api}/{made['id']}")
        assert response.status_code == 200
        assert response.json() == made
        assert response.headers["etag"] == f'"{made["version"]}"'

        created = await http.post(api, json={"title": "From the web", "priority": "low"})
        assert created.status_code == 201
        seen = await ok(client, "get_task", {"task_id": created.json()["id"]})
        assert seen == created.json()
        assert created.headers["etag"] == f'"{seen["version"]}"'

        # An agent's change is a change to incremental sync, and its deletion a tombstone.
        since = seen["updated_at"]
        await ok(client, "set_completed", {"task_id": seen["id"], "completed": True})
        await ok(client, "delete_task", {"task_id": made["id"]})
        synced = await http.get(api, params={"updated_since": since, "include_deleted": "true"})
        assert synced.status_code == 200
        rows = {row["id"]: row for row in synced.json()}
        assert rows[seen["id"]]["completed"] is True
        assert rows[made["id"]]["deleted"] is True
        # A change through /api is the version the agent's expected_version is checked against.
        patched = await http.patch(f"{api}/{seen['id']}", json={"title": "Edited on the web"})
        text = await refused(
            client,
            "update_task",
            {"task_id": seen["id"], "title": "Edited by the agent", "expected_version": 2},
        )
        assert f"now at version {patched.json()['version']}" in text
        # The same cursor pages both ways.
        await http.post(api, json={"title": "Third"})
        page = await ok(client, "list_tasks", {"limit": 1})
        rest_page = await http.get(api, params={"limit": 1, "cursor": page["next_cursor"]})
        assert rest_page.status_code == 200
        assert [row["id"] for row in rest_page.json()] == [seen["id"]]


class TestAuthentication:
    def test_no_token_is_a_401_naming_the_metadata(self, served: str) -> None:
        response = httpx.post(f"{served}/mcp", json={}, timeout=5)

        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == (
            f'Bearer realm="todo-api", resource_metadata="'
            f'{served}/.well-known/oauth-protected-resource/mcp"'
        )
        assert response.json()["instance"] == "/mcp"

    def test_a_bad_token_is_a_401_invalid_token(self, served: str) -> None:
        forged = hs256_token("alice", ttl=3600, secret=OTHER_SECRET)
        for token in (forged, "not-a-jwt", hs256_token("alice", ttl=-120)):
            response = httpx.post(f"{served}/mcp", json={}, headers=bearer(token), timeout=5)

            assert response.status_code == 401
            challenge = response.headers["www-authenticate"]
            assert 'error="invalid_token"' in challenge
            assert 'resource_metadata="' in challenge
            assert token not in response.text

    def test_the_metadata_document_names_this_resource(self, served: str) -> None:
        for path in (
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource",
        ):
            response = httpx.get(f"{served}{path}", timeout=5)

            assert response.status_code == 200
            document = response.json()
            # `todo-api serve` names its own address when MCP_PUBLIC_URL is not set.
            assert document["resource"] == f"{served}/mcp"
            assert document["bearer_methods_supported"] == ["header"]
            # No issuer is configured (a shared secret): no authorization server to name.
            assert "authorization_servers" not in document

    def test_mcp_is_not_in_the_rest_document(self, served: str) -> None:
        paths = httpx.get(f"{served}/openapi.json", timeout=5).json()["paths"]
        assert not any(path.startswith(("/mcp", "/.well-known")) for path in paths)
