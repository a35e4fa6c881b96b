"""Tombstones and incremental sync (`updated_since`, `include_deleted`) through real HTTP."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from tests.support.factories import JSON, assert_problem, create_task
from todo_api.db.database import Database
from todo_api.models.task import tasks
from todo_api.services.purge import purge, purge_tombstones

TASKS = "/api/alice/tasks"
TOMBSTONE_FIELDS = {"id", "deleted", "deleted_at", "updated_at"}


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def since(value: str | datetime) -> str:
    return value if isinstance(value, str) else value.isoformat()


async def sync_pages(
    client: httpx.AsyncClient, params: dict[str, Any], user_id: str = "alice"
) -> list[JSON]:
    """Every item of a listing, following its `Link` pages to the end."""
    items: list[JSON] = []
    response = await client.get(f"/api/{user_id}/tasks", params=params)
    while True:
        assert response.status_code == 200, response.text
        items.extend(response.json())
        link = response.headers.get("link")
        if link is None:
            return items
        next_url = link.split(";")[0].strip("<>")
        response = await client.get(next_url)


async def delete(client: httpx.AsyncClient, task: JSON) -> None:
    response = await client.delete(f"{TASKS}/{task['id']}")
    assert response.status_code == 204, response.text


class TestTombstones:
    async def test_a_deleted_task_is_gone_from_every_read_and_write(
        self, client: httpx.AsyncClient
    ) -> None:
        task = await create_task(client)
        await delete(client, task)
        url = f"{TASKS}/{task['id']}"

        assert_problem(await client.get(url), 404)
        assert_problem(await client.put(url, json={"title": "Back"}), 404)
        assert_problem(await client.patch(url, json={"title": "Back"}), 404)
        assert_problem(await client.patch(f"{url}/complete"), 404)
        assert_problem(await client.delete(url), 404)
        assert_problem(await client.delete(url, headers={"If-Match": '"2"'}), 404)
        assert (await client.get(TASKS)).json() == []
        stats = (await client.get(f"{TASKS}/stats")).json()
        assert stats["total"] == 0

    async def test_sync_lists_the_tombstone_and_nothing_of_its_content(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        before = datetime.now(UTC) - timedelta(seconds=1)
        task = await create_task(client, title="Secret plan", tags=["private"], due_at="2030-01-01")
        await delete(client, task)

        items = await sync_pages(client, {"updated_since": since(before), "include_deleted": True})

        [tombstone] = items
        assert set(tombstone) == TOMBSTONE_FIELDS
        assert tombstone["id"] == task["id"]
        assert tombstone["deleted"] is True
        assert tombstone["deleted_at"] == tombstone["updated_at"]
        assert parse_instant(tombstone["updated_at"]) > parse_instant(task["updated_at"])
        [row] = await db.fetch(
            select(tasks.c.title, tasks.c.description, tasks.c.tags, tasks.c.due_at).where(
                tasks.c.id == uuid.UUID(task["id"])
            ),
            {},
        )
        assert (row["title"], row["description"], row["tags"], row["due_at"]) == (
            "",
            None,
            [],
            None,
        )

    async def test_without_include_deleted_tombstones_stay_hidden(
        self, client: httpx.AsyncClient
    ) -> None:
        before = datetime.now(UTC) - timedelta(seconds=1)
        kept = await create_task(client, title="Kept")
        await delete(client, await create_task(client, title="Gone"))

        items = await sync_pages(client, {"updated_since": since(before)})

        assert [item["id"] for item in items] == [kept["id"]]

    async def test_clearing_completed_tasks_leaves_tombstones(
        self, client: httpx.AsyncClient
    ) -> None:
        before = datetime.now(UTC) - timedelta(seconds=1)
        done = [await create_task(client, title=f"Done {n}", completed=True) for n in range(3)]
        open_task = await create_task(client, title="Open")

        cleared = await client.delete(TASKS, params={"completed": "true"})
        assert cleared.json() == {"deleted": 3}

        items = await sync_pages(client, {"updated_since": since(before), "include_deleted": True})
        tombstones = {item["id"] for item in items if item.get("deleted")}
        assert tombstones == {task["id"] for task in done}
        assert [item["id"] for item in items if not item.get("deleted")] == [open_task["id"]]
        assert (await client.delete(TASKS, params={"completed": "true"})).json() == {"deleted": 0}


class TestUpdatedSince:
    async def test_lists_only_later_changes_oldest_first(self, client: httpx.AsyncClient) -> None:
        first = await create_task(client, title="First")
        second = await create_task(client, title="Second")
        third = await create_task(client, title="Third")
        renamed = await client.patch(f"{TASKS}/{first['id']}", json={"title": "First, renamed"})

        items = await sync_pages(client, {"updated_since": second["updated_at"]})

        assert [item["id"] for item in items] == [third["id"], first["id"]]
        assert items[1] == renamed.json()
        instants = [parse_instant(item["updated_at"]) for item in items]
        assert all(instant > parse_instant(second["updated_at"]) for instant in instants)

    async def test_pages_of_a_sync_follow_the_change_order(self, client: httpx.AsyncClient) -> None:
        before = datetime.now(UTC) - timedelta(seconds=1)
        created = [await create_task(client, title=f"Task {n}") for n in range(7)]
        for task in created[:3]:
            await delete(client, task)

        items = await sync_pages(
            client, {"updated_since": since(before), "include_deleted": True, "limit": 2}
        )

        assert [item["id"] for item in items] == [t["id"] for t in created[3:] + created[:3]]
        instants = [parse_instant(item["updated_at"]) for item in items]
        assert instants == sorted(instants)
        assert len(set(instants)) == len(instants)

    async def test_include_deleted_without_updated_since_lists_everything(
        self, client: httpx.AsyncClient
    ) -> None:
        kept = await create_task(client)
        gone = await create_task(client)
        await delete(client, gone)

        items = await sync_pages(client, {"include_deleted": True})

        assert [(item["id"], item.get("deleted", False)) for item in items] == [
            (kept["id"], False),
            (gone["id"], True),
        ]

    async def test_an_explicit_order_is_kept_without_include_deleted(
        self, client: httpx.AsyncClient
    ) -> None:
        before = datetime.now(UTC) - timedelta(seconds=1)
        tasks_made = [await create_task(client, title=title) for title in ("b", "c", "a")]

        items = await sync_pages(client, {"updated_since": since(before), "sort": "title"})

        assert [item["title"] for item in items] == ["a", "b", "c"]
        assert len(items) == len(tasks_made)

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"updated_since": "yesterday"}, "updated_since"),
            ({"updated_since": "2026-01-01T00:00:00"}, "updated_since"),
            ({"include_deleted": "maybe"}, "include_deleted"),
        ],
    )
    async def test_a_malformed_sync_parameter_is_a_400_naming_it(
        self, client: httpx.AsyncClient, params: dict[str, str], field: str
    ) -> None:
        response = await client.get(TASKS, params=params)

        assert_problem(response, 400, fields=[field])

    async def test_filters_pick_live_tasks_and_leave_every_tombstone_listed(
        self, client: httpx.AsyncClient
    ) -> None:
        open_task = await create_task(client, title="Open", priority="high")
        await create_task(client, title="Done", priority="high", completed=True)
        await create_task(client, title="Low", priority="low")
        gone = await create_task(client, title="Gone", priority="low")
        await delete(client, gone)

        items = await sync_pages(
            client, {"include_deleted": "true", "completed": "false", "priority": "high"}
        )

        assert [item["id"] for item in items] == [open_task["id"], gone["id"]]
        assert items[1]["deleted"] is True

    async def test_include_deleted_keeps_an_explicit_order(self, client: httpx.AsyncClient) -> None:
        first = await create_task(client, title="First")
        second = await create_task(client, title="Second")
        await delete(client, first)

        items = await sync_pages(client, {"include_deleted": "true", "sort": "-created_at"})

        assert [item["id"] for item in items] == [second["id"], first["id"]]

    async def test_a_cursor_belongs_to_its_sync(self, client: httpx.AsyncClient) -> None:
        before = datetime.now(UTC) - timedelta(seconds=1)
        for n in range(3):
            await create_task(client, title=f"Task {n}")
        params = {"updated_since": since(before), "include_deleted": "true", "limit": "1"}
        first = await client.get(TASKS, params=params)
        cursor = first.headers["link"].split("cursor=")[1].split(">")[0]

        other = await client.get(
            TASKS, params={**params, "include_deleted": "false", "cursor": cursor}
        )

        assert_problem(other, 400, fields=["cursor"])

    async def test_a_sync_from_before_the_retention_is_gone(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        days = app.state.settings.tombstone_retention_days
        too_old = datetime.now(UTC) - timedelta(days=days, minutes=1)

        response = await client.get(
            TASKS, params={"updated_since": since(too_old), "include_deleted": "true"}
        )
        body = assert_problem(response, 410)
        assert body["type"] == "/problems/sync-horizon-passed"

        # Without tombstones nothing can be missed: a plain filter of any age is fine.
        plain = await client.get(TASKS, params={"updated_since": since(too_old)})
        assert plain.status_code == 200


class TestChangeOrder:
    async def test_concurrent_changes_of_one_user_get_distinct_increasing_instants(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await asyncio.gather(
            *(client.post(TASKS, json={"title": f"Task {n}"}) for n in range(30))
        )
        instants = [parse_instant(r.json()["updated_at"]) for r in created]
        assert len(set(instants)) == 30
        for response in created:
            body = response.json()
            assert body["created_at"] == body["updated_at"]

    async def test_a_change_never_moves_a_task_back_in_time(
        self, client: httpx.AsyncClient
    ) -> None:
        task = await create_task(client)
        seen = [parse_instant(task["updated_at"])]
        for n in range(5):
            changed = await client.patch(f"{TASKS}/{task['id']}", json={"title": f"Rev {n}"})
            seen.append(parse_instant(changed.json()["updated_at"]))
        assert seen == sorted(seen)
        assert len(set(seen)) == len(seen)

    async def test_a_client_syncing_during_writes_ends_with_the_servers_state(
        self, client: httpx.AsyncClient
    ) -> None:
        """Writers create, change, complete and delete tasks while a client syncs over and over
        from the latest `updated_at` it has seen; after the writers stop and one last sync, the
        client holds exactly the server's tasks."""
        rng = random.Random(20261126)
        live: list[str] = []
        writing = True

        async def writer(number: int) -> None:
            for step in range(25):
                action = rng.random()
                if action < 0.4 or not live:
                    response = await client.post(TASKS, json={"title": f"W{number}-{step}"})
                    assert response.status_code == 201, response.text
                    live.append(response.json()["id"])
                    continue
                task_id = rng.choice(live)
                if action < 0.65:
                    response = await client.patch(
                        f"{TASKS}/{task_id}", json={"title": f"W{number}-{step} edit"}
                    )
                elif action < 0.85:
                    response = await client.patch(f"{TASKS}/{task_id}/complete")
                else:
                    response = await client.delete(f"{TASKS}/{task_id}")
                    if response.status_code == 204 and task_id in live:
                        live.remove(task_id)
                # Another writer may have deleted the task first.
                assert response.status_code in {200, 204, 404}, response.text

        replica: dict[str, JSON] = {}
        cursor_since: str | None = None
        syncs = 0

        async def sync_once() -> None:
            nonlocal cursor_since, syncs
            params: dict[str, Any] = {"include_deleted": "true", "limit": 7}
            if cursor_since is not None:
                params["updated_since"] = cursor_since
            for item in await sync_pages(client, params):
                if item.get("deleted"):
                    replica.pop(item["id"], None)
                else:
                    replica[item["id"]] = item
                cursor_since = item["updated_at"]
            syncs += 1

        async def syncer() -> None:
            while writing:
                await sync_once()
                await asyncio.sleep(0)

        sync_task = asyncio.create_task(syncer())
        await asyncio.gather(*(writer(n) for n in range(6)))
        writing = False
        await sync_task
        await sync_once()

        server = {item["id"]: item for item in await sync_pages(client, {"limit": 500})}
        assert replica == server
        assert syncs > 2


class TestPurge:
    async def test_purge_deletes_only_tombstones_past_the_retention(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        kept = await create_task(client, title="Kept")
        recent = await create_task(client, title="Recently deleted")
        await delete(client, recent)

        # Nothing is old enough yet.
        assert await purge_tombstones(db, before=datetime.now(UTC) - timedelta(days=30)) == 0
        purged = await purge(
            db, now=datetime.now(UTC) + timedelta(days=31), tombstone_retention=timedelta(days=30)
        )
        assert (purged.tombstones, purged.idempotency_keys) == (1, 0)

        rows = await db.fetch(select(tasks.c.id), {})
        assert {str(row["id"]) for row in rows} == {kept["id"]}

    async def test_purge_works_through_a_backlog_in_batches(
        self, client: httpx.AsyncClient, db: Database
    ) -> None:
        made = [await create_task(client, title=f"Old {n}") for n in range(7)]
        for task in made:
            await delete(client, task)

        later = datetime.now(UTC) + timedelta(days=1)
        assert await purge_tombstones(db, before=later, batch=3) == 7
        assert await db.fetch(select(tasks.c.id), {}) == []
