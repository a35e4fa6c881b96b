"""Task business rules against a real database, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support.factories import stored_tasks
from todo_api.data.tasks import COLUMNS
from todo_api.db.database import Database
from todo_api.errors import TaskNotFound
from todo_api.models.task import tasks as tasks_table
from todo_api.schemas.task import TaskCreate, TaskUpdate
from todo_api.services.tasks import (
    TaskRow,
    create_task,
    delete_task,
    get_task,
    set_completed,
    update_task,
)

NOT_UUIDS = ["42", "not-a-uuid", "", "00000000-0000-0000-0000-00000000000g"]


async def new_task(
    db: Database, user_id: str = "alice", title: str = "Buy milk", **fields: object
) -> TaskRow:
    data = TaskCreate.model_validate({"title": title, **fields})
    return await create_task(db, user_id=user_id, data=data)


def changes(**fields: object) -> TaskUpdate:
    return TaskUpdate.model_validate(fields)


class TestCreateTask:
    async def test_returns_the_stored_task(self, db: Database) -> None:
        row = await new_task(db, title="  Buy milk ", description="2 litres")

        assert isinstance(row["id"], uuid.UUID)
        assert row["id"].version == 4
        assert row["user_id"] == "alice"
        assert row["title"] == "Buy milk"
        assert row["description"] == "2 litres"
        assert row["completed"] is False
        assert row["created_at"] == row["updated_at"]

    async def test_is_committed_for_other_connections(self, db: Database) -> None:
        row = await new_task(db, completed=True)

        async with db.engine.connect() as other:
            stored = (
                (await other.execute(select(*COLUMNS).where(tasks_table.c.id == row["id"])))
                .mappings()
                .one()
            )

        assert dict(stored) == dict(row)


class TestGetTask:
    async def test_returns_the_owners_task(self, db: Database) -> None:
        created = await new_task(db)

        row = await get_task(db, user_id="alice", task_id=str(created["id"]))

        assert dict(row) == dict(created)

    async def test_accepts_the_id_in_any_uuid_spelling(self, db: Database) -> None:
        created = await new_task(db)

        row = await get_task(db, user_id="alice", task_id=str(created["id"]).upper())

        assert row["id"] == created["id"]

    async def test_unknown_id_is_not_found(self, db: Database) -> None:
        with pytest.raises(TaskNotFound):
            await get_task(db, user_id="alice", task_id=str(uuid.uuid4()))


class TestListTasks:
    async def test_unknown_user_has_no_tasks(self, db: Database) -> None:
        await new_task(db, user_id="bob")

        assert await stored_tasks(db, "alice") == []

    async def test_lists_only_the_users_tasks_newest_first(self, db: Database) -> None:
        for title in ("first", "second", "third"):
            await new_task(db, title=title)
        await new_task(db, user_id="bob", title="not alice's")

        rows = await stored_tasks(db, "alice")

        assert [row["title"] for row in rows] == ["third", "second", "first"]
        assert {row["user_id"] for row in rows} == {"alice"}

    async def test_tasks_created_in_the_same_instant_are_ordered_by_id_descending(
        self, conn: AsyncConnection, db: Database
    ) -> None:
        instant = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        ids = [uuid.uuid4() for _ in range(5)]
        await conn.execute(
            insert(tasks_table),
            [
                {
                    "id": task_id,
                    "user_id": "alice",
                    "title": f"same time {n}",
                    "completed": False,
                    "created_at": instant,
                    "updated_at": instant,
                }
                for n, task_id in enumerate(ids)
            ],
        )
        await conn.commit()

        rows = await stored_tasks(db, "alice")

        assert [row["id"] for row in rows] == sorted(ids, reverse=True)


class TestUpdateTask:
    async def test_changes_only_the_fields_sent(self, db: Database) -> None:
        created = await new_task(db, title="Old", description="keep me")

        row = await update_task(
            db, user_id="alice", task_id=str(created["id"]), changes=changes(title="New")
        )

        assert row["title"] == "New"
        assert row["description"] == "keep me"
        assert row["completed"] is False
        assert row["created_at"] == created["created_at"]
        assert row["updated_at"] > created["updated_at"]

    async def test_null_description_clears_it(self, db: Database) -> None:
        created = await new_task(db, description="gone soon")

        row = await update_task(
            db,
            user_id="alice",
            task_id=str(created["id"]),
            changes=changes(description=None),
        )

        assert row["description"] is None
        assert row["updated_at"] > created["updated_at"]

    @pytest.mark.parametrize(
        "sent",
        [
            {},
            {"title": "Buy milk"},
            {"title": "  Buy milk  ", "description": "2 litres", "completed": False},
        ],
    )
    async def test_no_real_change_keeps_updated_at(
        self, db: Database, sent: dict[str, object]
    ) -> None:
        created = await new_task(db, title="Buy milk", description="2 litres")

        row = await update_task(
            db, user_id="alice", task_id=str(created["id"]), changes=changes(**sent)
        )

        assert dict(row) == dict(created)
        stored = await get_task(db, user_id="alice", task_id=str(created["id"]))
        assert stored["updated_at"] == created["updated_at"]

    async def test_a_change_is_visible_to_a_later_read(self, db: Database) -> None:
        created = await new_task(db)
        updated = await update_task(
            db,
            user_id="alice",
            task_id=str(created["id"]),
            changes=changes(completed=True),
        )

        stored = await get_task(db, user_id="alice", task_id=str(created["id"]))

        assert dict(stored) == dict(updated)
        assert stored["completed"] is True


class TestSetCompleted:
    async def test_without_a_value_flips_it_each_time(self, db: Database) -> None:
        created = await new_task(db)
        task_id = str(created["id"])

        first = await set_completed(db, user_id="alice", task_id=task_id, completed=None)
        second = await set_completed(db, user_id="alice", task_id=task_id, completed=None)

        assert first["completed"] is True
        assert second["completed"] is False
        assert created["updated_at"] < first["updated_at"] < second["updated_at"]

    async def test_an_explicit_value_is_idempotent(self, db: Database) -> None:
        created = await new_task(db)
        task_id = str(created["id"])

        first = await set_completed(db, user_id="alice", task_id=task_id, completed=True)
        again = await set_completed(db, user_id="alice", task_id=task_id, completed=True)

        assert first["completed"] is True
        assert first["updated_at"] > created["updated_at"]
        assert dict(again) == dict(first)

    async def test_an_explicit_false_on_an_open_task_changes_nothing(self, db: Database) -> None:
        created = await new_task(db)

        row = await set_completed(db, user_id="alice", task_id=str(created["id"]), completed=False)

        assert dict(row) == dict(created)


class TestDeleteTask:
    async def test_deleted_task_is_gone(self, db: Database) -> None:
        created = await new_task(db)
        kept = await new_task(db, title="Kept")

        await delete_task(db, user_id="alice", task_id=str(created["id"]))

        with pytest.raises(TaskNotFound):
            await get_task(db, user_id="alice", task_id=str(created["id"]))
        assert [row["id"] for row in await stored_tasks(db, "alice")] == [kept["id"]]

    async def test_deleting_twice_is_not_found(self, db: Database) -> None:
        created = await new_task(db)
        await delete_task(db, user_id="alice", task_id=str(created["id"]))

        with pytest.raises(TaskNotFound):
            await delete_task(db, user_id="alice", task_id=str(created["id"]))


class TestOwnership:
    async def test_other_users_task_is_not_found_on_get(self, db: Database) -> None:
        theirs = await new_task(db, user_id="bob")

        with pytest.raises(TaskNotFound):
            await get_task(db, user_id="alice", task_id=str(theirs["id"]))

    async def test_other_users_task_is_not_found_on_update_and_stays_unchanged(
        self, db: Database
    ) -> None:
        theirs = await new_task(db, user_id="bob")

        with pytest.raises(TaskNotFound):
            await update_task(
                db, user_id="alice", task_id=str(theirs["id"]), changes=changes(title="Mine")
            )
        with pytest.raises(TaskNotFound):
            await update_task(db, user_id="alice", task_id=str(theirs["id"]), changes=changes())

        stored = await get_task(db, user_id="bob", task_id=str(theirs["id"]))
        assert dict(stored) == dict(theirs)

    @pytest.mark.parametrize("completed", [None, True])
    async def test_other_users_task_is_not_found_on_set_completed(
        self, db: Database, completed: bool | None
    ) -> None:
        theirs = await new_task(db, user_id="bob")

        with pytest.raises(TaskNotFound):
            await set_completed(db, user_id="alice", task_id=str(theirs["id"]), completed=completed)

        stored = await get_task(db, user_id="bob", task_id=str(theirs["id"]))
        assert dict(stored) == dict(theirs)

    async def test_other_users_task_is_not_found_on_delete_and_survives(self, db: Database) -> None:
        theirs = await new_task(db, user_id="bob")

        with pytest.raises(TaskNotFound):
            await delete_task(db, user_id="alice", task_id=str(theirs["id"]))

        stored = await get_task(db, user_id="bob", task_id=str(theirs["id"]))
        assert dict(stored) == dict(theirs)


class TestNonUuidIds:
    @pytest.mark.parametrize("task_id", NOT_UUIDS)
    async def test_get_is_not_found(self, db: Database, task_id: str) -> None:
        with pytest.raises(TaskNotFound):
            await get_task(db, user_id="alice", task_id=task_id)

    @pytest.mark.parametrize("task_id", NOT_UUIDS)
    async def test_update_is_not_found(self, db: Database, task_id: str) -> None:
        with pytest.raises(TaskNotFound):
            await update_task(db, user_id="alice", task_id=task_id, changes=changes(title="New"))

    @pytest.mark.parametrize("task_id", NOT_UUIDS)
    async def test_set_completed_is_not_found(self, db: Database, task_id: str) -> None:
        with pytest.raises(TaskNotFound):
            await set_completed(db, user_id="alice", task_id=task_id, completed=None)

    @pytest.mark.parametrize("task_id", NOT_UUIDS)
    async def test_delete_is_not_found(self, db: Database, task_id: str) -> None:
        with pytest.raises(TaskNotFound):
            await delete_task(db, user_id="alice", task_id=task_id)


class TestConcurrentUpdates:
    async def test_updated_at_never_moves_backwards(self, db: Database) -> None:
        task = await new_task(db)
        task_id = str(task["id"])

        rows = await asyncio.gather(
            *(
                update_task(db, user_id="alice", task_id=task_id, changes=changes(title=f"v{n}"))
                for n in range(30)
            )
        )

        stamps = [row["updated_at"] for row in rows]
        assert len(set(stamps)) == len(stamps)
        final = await get_task(db, user_id="alice", task_id=task_id)
        assert final["updated_at"] == max(stamps)
        assert final["title"] == next(r["title"] for r in rows if r["updated_at"] == max(stamps))
