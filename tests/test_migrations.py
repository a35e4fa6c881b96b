"""Migrations on real databases: empty to head, models match head, down and up again (DESIGN §8)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from tests.support.databases import (
    POSTGRES_ENV,
    create_postgres_database,
    drop_postgres_database,
    fresh_postgres_database,
    make_settings,
    postgres_url,
    requires_postgres,
)
from tests.support.factories import stored_tasks
from tests.support.schema import HEAD_TABLES, read_schema, read_versions
from todo_api.db.connect import create_database
from todo_api.db.database import Database
from todo_api.db.migrations import (
    current_revision,
    downgrade,
    head_revision,
    include_name,
    upgrade,
)
from todo_api.models import metadata
from todo_api.schemas.task import TaskCreate, TaskUpdate
from todo_api.services.tasks import create_task, update_task

# SQLite cannot reflect the expression indexes of the due-date orders (`due_at IS NULL, ...`), so
# SQLAlchemy and Alembic say they skip them there; PostgreSQL reflects and compares them (the
# [postgresql] cases), so the warning carries nothing to act on.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Skipped unsupported reflection of expression-based index:sqlalchemy.exc.SAWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:autogenerate skipping metadata-specified expression-based index:UserWarning"
    ),
]

INDEX_NAME = "ix_tasks_user_id_created_at_id"
TASK_COLUMNS = [
    "id",
    "user_id",
    "title",
    "description",
    "completed",
    "created_at",
    "updated_at",
    "priority",
    "due_at",
    "tags",
    "tag_keys",
    "completed_at",
    "version",
    "deleted_at",
]
SORT_INDEXES = {
    INDEX_NAME,
    "ix_tasks_user_id_updated_at_id",
    "ix_tasks_user_id_priority_id",
    "ix_tasks_user_id_title_id",
    "ix_tasks_user_id_due_asc_id",
    "ix_tasks_user_id_due_desc_id",
}
TRIGRAM_INDEXES = {"ix_tasks_user_id_title_trgm", "ix_tasks_user_id_description_trgm"}


TOMBSTONE_INDEX = "ix_tasks_deleted_at"


def expected_indexes(database: Database) -> set[str]:
    """pg_trgm and btree_gin exist on the PostgreSQL the suite runs on: search is indexed there."""
    trigrams = TRIGRAM_INDEXES if database.backend == "postgresql" else set()
    return SORT_INDEXES | {TOMBSTONE_INDEX} | trigrams


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a brand-new, empty database of this test's own."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/empty.db"
        return
    if postgres_url() is None:
        pytest.skip(f"{POSTGRES_ENV} is not set: the PostgreSQL half of the suite is skipped")
    name = f"todo_migrations_{uuid.uuid4().hex[:12]}"
    url = await create_postgres_database(name)
    try:
        yield url
    finally:
        await drop_postgres_database(name)


@pytest.fixture
async def empty_db(empty_url: str) -> AsyncIterator[Database]:
    database = create_database(make_settings(database_url=empty_url))
    try:
        yield database
    finally:
        await database.dispose()


def model_differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"include_name": include_name})
    return list(compare_metadata(context, metadata))


class TestUpgradeFromEmpty:
    async def test_empty_database_has_no_revision(self, empty_db: Database) -> None:
        assert await current_revision(empty_db.engine) is None

    async def test_creates_the_tasks_table_and_its_index(self, empty_db: Database) -> None:
        await upgrade(empty_db.engine)

        found = await read_schema(empty_db)
        assert found["tables"] == HEAD_TABLES
        assert found["columns"] == TASK_COLUMNS
        assert found["index_names"] == expected_indexes(empty_db)
        columns, sorting = found["indexes"][INDEX_NAME]
        assert columns == ["user_id", "created_at", "id"]
        if empty_db.backend == "postgresql":
            assert sorting == {"created_at": ("desc",), "id": ("desc",)}
        else:
            # SQLite's reflection leaves out the direction; its catalogue keeps the DDL.
            async with empty_db.engine.connect() as conn:
                ddl = await conn.scalar(
                    text("SELECT sql FROM sqlite_master WHERE name = :name"), {"name": INDEX_NAME}
                )
            assert "created_at DESC, id DESC" in ddl

    async def test_records_the_head_revision(self, empty_db: Database) -> None:
        await upgrade(empty_db.engine)

        head = head_revision()
        assert head is not None
        assert await current_revision(empty_db.engine) == head

    async def test_models_match_head(self, empty_db: Database) -> None:
        await upgrade(empty_db.engine)

        async with empty_db.engine.connect() as conn:
            differences = await conn.run_sync(model_differences)

        assert differences == []

    async def test_upgrading_an_up_to_date_database_changes_nothing(
        self, empty_db: Database
    ) -> None:
        await upgrade(empty_db.engine)
        await create_task(empty_db, user_id="alice", data=TaskCreate(title="Kept"))

        await upgrade(empty_db.engine)

        async with empty_db.engine.connect() as conn:
            titles = (await conn.execute(text("SELECT title FROM tasks"))).scalars().all()
        assert titles == ["Kept"]
        assert await current_revision(empty_db.engine) == head_revision()


class TestDowngrade:
    async def test_downgrade_to_base_removes_the_schema(self, empty_db: Database) -> None:
        await upgrade(empty_db.engine)

        await downgrade(empty_db.engine, "base")

        assert (await read_schema(empty_db))["tables"] == ["alembic_version"]
        assert await current_revision(empty_db.engine) is None

    async def test_upgrade_after_downgrade_restores_head(self, empty_db: Database) -> None:
        await upgrade(empty_db.engine)
        await downgrade(empty_db.engine, "base")

        await upgrade(empty_db.engine)

        found = await read_schema(empty_db)
        assert found["tables"] == HEAD_TABLES
        assert found["index_names"] == expected_indexes(empty_db)
        assert await current_revision(empty_db.engine) == head_revision()
        async with empty_db.engine.connect() as conn:
            assert await conn.run_sync(model_differences) == []


@pytest.mark.postgres_only
@requires_postgres
class TestConcurrentUpgrade:
    @pytest.fixture
    async def pg_url(self) -> AsyncIterator[str]:
        async with fresh_postgres_database("todo_migrations") as url:
            yield url

    async def test_two_upgrades_in_one_process_both_succeed(self, pg_url: str) -> None:
        # A short statement timeout turns a lock-wait deadlock into a quick failure.
        settings = make_settings(database_url=pg_url, db_statement_timeout_ms=2000)
        first, second = create_database(settings), create_database(settings)
        try:
            results = await asyncio.gather(
                upgrade(first.engine), upgrade(second.engine), return_exceptions=True
            )
            assert list(results) == [None, None]
            assert await current_revision(first.engine) == head_revision()
            assert await read_versions(first) == [head_revision()]
        finally:
            await first.dispose()
            await second.dispose()


# Tasks as revision 0001 stored them: title, completed, created_at, updated_at.
REVISION_ONE_ROWS = (
    ("open task", False, "2026-01-01 09:00:00", "2026-01-02 10:00:00"),
    ("done task", True, "2026-01-03 09:00:00", "2026-01-04 11:30:00"),
)


class TestUpgradeFromRevisionOne:
    """Revision 0002 adds columns to a table that may already hold tasks: none may be lost."""

    async def test_existing_tasks_keep_their_data_and_gain_defaults(
        self, empty_db: Database
    ) -> None:
        await upgrade(empty_db.engine, "0001")
        ids = [uuid.uuid4() for _ in REVISION_ONE_ROWS]
        async with empty_db.engine.begin() as conn:
            for task_id, (title, completed, created, updated) in zip(
                ids, REVISION_ONE_ROWS, strict=True
            ):
                await conn.execute(
                    text(
                        "INSERT INTO tasks (id, user_id, title, description, completed, "
                        "created_at, updated_at) VALUES (:id, 'alice', :title, NULL, :completed, "
                        ":created, :updated)"
                    ),
                    {
                        "id": task_id if empty_db.backend == "postgresql" else task_id.hex,
                        "title": title,
                        "completed": completed,
                        "created": datetime.fromisoformat(created + "+00:00")
                        if empty_db.backend == "postgresql"
                        else created + ".000000",
                        "updated": datetime.fromisoformat(updated + "+00:00")
                        if empty_db.backend == "postgresql"
                        else updated + ".000000",
                    },
                )

        await upgrade(empty_db.engine)

        listed = await stored_tasks(empty_db, "alice")
        by_title = {row["title"]: row for row in listed}
        assert sorted(by_title) == ["done task", "open task"]
        assert {row["id"] for row in listed} == set(ids)
        for title, completed, created, updated in REVISION_ONE_ROWS:
            row = by_title[title]
            assert row["completed"] is completed
            assert row["created_at"] == datetime.fromisoformat(created + "+00:00")
            assert row["updated_at"] == datetime.fromisoformat(updated + "+00:00")
            assert row["priority"] == "medium"
            assert row["due_at"] is None
            assert row["tags"] == []
            # A task completed before completion times were kept: its last change is the best
            # record of when that happened.
            assert row["completed_at"] == (row["updated_at"] if completed else None)

    async def test_downgrade_to_revision_one_keeps_the_tasks(self, empty_db: Database) -> None:
        await upgrade(empty_db.engine)
        created = await create_task(
            empty_db, user_id="alice", data=TaskCreate(title="Survives", priority="high")
        )

        await downgrade(empty_db.engine, "0001")

        async with empty_db.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT title, completed FROM tasks"))).all()
        assert [tuple(row) for row in rows] == [("Survives", False)]
        assert "priority" not in (await read_schema(empty_db))["columns"]
        await upgrade(empty_db.engine)
        assert [row["id"] for row in await stored_tasks(empty_db, "alice")] == [created["id"]]


class TestUpgradeToTombstones:
    """Revision 0005: a user's clock starts at their latest change, so a task changed after the
    upgrade is never stamped earlier than it was before, even if that instant lies ahead."""

    async def test_changes_after_the_upgrade_come_after_every_earlier_one(
        self, empty_db: Database
    ) -> None:
        await upgrade(empty_db.engine, "0004")
        ahead = datetime.now(UTC) + timedelta(hours=1)
        task = await create_task_at_revision_four(empty_db, updated_at=ahead)

        await upgrade(empty_db.engine)

        [before] = await stored_tasks(empty_db, "alice")
        assert before["updated_at"] == ahead
        changed = await update_task(
            empty_db, user_id="alice", task_id=str(task), changes=TaskUpdate(title="Later")
        )
        assert changed["updated_at"] > ahead
        created = await create_task(empty_db, user_id="alice", data=TaskCreate(title="Newer"))
        assert created["updated_at"] > changed["updated_at"]


async def create_task_at_revision_four(database: Database, *, updated_at: datetime) -> uuid.UUID:
    task_id = uuid.uuid4()
    postgres = database.backend == "postgresql"
    stamp: Any = updated_at if postgres else updated_at.replace(tzinfo=None).isoformat(sep=" ")
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO tasks (id, user_id, title, completed, tags, tag_keys, created_at, "
                "updated_at) VALUES (:id, 'alice', 'Ahead', false, :none, :none, :stamp, :stamp)"
            ),
            {
                "id": task_id if postgres else task_id.hex,
                "none": [] if postgres else "[]",
                "stamp": stamp,
            },
        )
    return task_id


class TestListIndexesHoldLiveTasks:
    async def test_every_list_index_but_updated_ats_skips_tombstones(
        self, empty_db: Database
    ) -> None:
        await upgrade(empty_db.engine)
        if empty_db.backend == "postgresql":
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks'"
        else:
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        async with empty_db.engine.connect() as conn:
            rows = (await conn.execute(text(query))).all()
        definitions: dict[str, str] = {row[0]: row[1] for row in rows}

        partial = {
            name
            for name, ddl in definitions.items()
            if "deleted_at IS NULL" in ddl.replace("(", "").replace(")", "")
        }
        assert partial == SORT_INDEXES - {"ix_tasks_user_id_updated_at_id"}
