"""Engine and driver settings (the db package) on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import NullPool

from tests.support.apps import build_app, client_for, close_app
from tests.support.databases import (
    POSTGRES_ENV,
    create_postgres_database,
    drop_postgres_database,
    libpq_dsn,
    make_settings,
    postgres_url,
    requires_postgres,
)
from tests.support.factories import stored_tasks
from todo_api.db.connect import create_database, uses_pgbouncer
from todo_api.db.database import Database
from todo_api.db.faults import is_database_unavailable
from todo_api.db.migrations import upgrade
from todo_api.db.postgres import PostgresDatabase
from todo_api.db.sqlite import SQLITE_BUSY_TIMEOUT_MS, SQLiteDatabase
from todo_api.errors import DatabaseUnavailable
from todo_api.models.task import tasks as tasks_table
from todo_api.schemas.task import TaskCreate
from todo_api.services.tasks import create_task, get_task, set_completed

NEON_POOLER_URL = (
    "postgresql://u:p@ep-cool-name-123456-pooler.eu-central-1.aws.neon.tech/neondb?sslmode=require"
)


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh, migrated SQLite file of this test's own."""
    database = create_database(make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db"))
    await upgrade(database.engine)
    try:
        yield database
    finally:
        await database.dispose()


def postgres_database(**values: object) -> Database:
    url = postgres_url()
    assert url is not None
    return create_database(make_settings(database_url=url, **values))


async def show(database: Database, setting: str) -> str:
    async with database.engine.connect() as conn:
        value: str = (await conn.execute(text(f"SHOW {setting}"))).scalar_one()
    return value


class _Captured(Exception):
    """Raised by the connect hook once the driver arguments are captured."""


async def driver_connect_args(database: Database) -> dict[str, Any]:
    """The keyword arguments the engine hands asyncpg, captured before any network traffic."""
    captured: dict[str, Any] = {}

    def capture(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        captured.update(cparams)
        raise _Captured

    event.listen(database.engine.sync_engine, "do_connect", capture)
    try:
        with pytest.raises(_Captured):
            async with database.engine.connect():
                pass
    finally:
        event.remove(database.engine.sync_engine, "do_connect", capture)
    return captured


class TestSqliteConnection:
    async def test_every_connection_uses_wal_foreign_keys_and_a_busy_timeout(
        self, sqlite_db: Database
    ) -> None:
        async with sqlite_db.engine.connect() as first, sqlite_db.engine.connect() as second:
            for conn in (first, second):
                journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
                foreign_keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
                busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()

                assert journal == "wal"
                assert foreign_keys == 1
                assert busy == 5000 == SQLITE_BUSY_TIMEOUT_MS

    async def test_concurrent_writers_all_succeed(self, sqlite_db: Database) -> None:
        async def create(number: int) -> str:
            row = await create_task(
                sqlite_db, user_id="alice", data=TaskCreate(title=f"Task {number}")
            )
            return str(row["title"])

        titles = await asyncio.gather(*(create(n) for n in range(20)))

        assert sorted(titles) == sorted(f"Task {n}" for n in range(20))
        stored = await stored_tasks(sqlite_db, "alice")
        assert sorted(row["title"] for row in stored) == sorted(titles)

    async def test_in_memory_database_is_shared_by_every_connection(self) -> None:
        database = create_database(make_settings(database_url="sqlite+aiosqlite:///:memory:"))
        try:
            await upgrade(database.engine)
            await create_task(database, user_id="alice", data=TaskCreate(title="Kept"))
            stored = await stored_tasks(database, "alice")
        finally:
            await database.dispose()

        assert [row["title"] for row in stored] == ["Kept"]

    async def test_in_memory_requests_never_land_in_each_others_transactions(self) -> None:
        """Keyed requests run in transactions on the one shared connection; a refused one
        (422, rolled back) must not take the plain writes around it down with it."""
        settings = make_settings(database_url="sqlite+aiosqlite:///:memory:", rate_limit="0")
        database = create_database(settings)
        application = build_app(database, settings)
        try:
            await upgrade(database.engine)
            async with client_for(application) as http:
                first = await http.post(
                    "/api/bob/tasks", json={"title": "Keyed"}, headers={"Idempotency-Key": "k"}
                )
                assert first.status_code == 201
                plain = [
                    http.post("/api/alice/tasks", json={"title": f"Plain {n}"}) for n in range(30)
                ]
                reused = [
                    http.post(
                        "/api/bob/tasks",
                        json={"title": f"Other {n}"},
                        headers={"Idempotency-Key": "k"},
                    )
                    for n in range(10)
                ]
                responses = await asyncio.gather(*plain, *reused)
            stored = await stored_tasks(database, "alice")
        finally:
            await close_app(application)
            await database.dispose()

        assert [r.status_code for r in responses[:30]] == [201] * 30
        assert {r.status_code for r in responses[30:]} <= {409, 422}
        assert len(stored) == 30


class TestConcurrentWrites:
    async def test_concurrent_toggles_of_one_task_are_never_lost(self, db: Database) -> None:
        created = await create_task(db, user_id="alice", data=TaskCreate(title="Flip"))
        task_id = str(created["id"])

        async def toggle() -> None:
            await set_completed(db, user_id="alice", task_id=task_id, completed=None)

        await asyncio.gather(*(toggle() for _ in range(21)))

        final = await get_task(db, user_id="alice", task_id=task_id)
        assert final["completed"] is True


class TestTimestamps:
    async def test_created_task_has_aware_utc_timestamps(self, db: Database) -> None:
        before = datetime.now(UTC)
        row = await create_task(db, user_id="alice", data=TaskCreate(title="When"))
        after = datetime.now(UTC)

        assert row["created_at"].utcoffset() == timedelta(0)
        assert row["updated_at"].utcoffset() == timedelta(0)
        assert before <= row["created_at"] <= after

    async def test_timestamps_read_back_are_aware_utc(self, db: Database) -> None:
        created = await create_task(db, user_id="alice", data=TaskCreate(title="When"))

        row = await get_task(db, user_id="alice", task_id=str(created["id"]))

        assert row["created_at"].tzinfo == UTC
        assert row["updated_at"].tzinfo == UTC
        assert row["created_at"] == created["created_at"]

    async def test_other_offsets_are_stored_as_the_same_instant_in_utc(
        self, conn: AsyncConnection, db: Database
    ) -> None:
        india = timezone(timedelta(hours=5, minutes=30))
        local = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=india)
        stmt = insert(tasks_table).values(
            id=uuid.uuid4(),
            user_id="alice",
            title="Offset",
            completed=False,
            created_at=local,
            updated_at=local,
        )
        await conn.execute(stmt)
        await conn.commit()

        [row] = await stored_tasks(db, "alice")

        assert row["created_at"] == datetime(2026, 3, 1, 6, 30, 0, 123456, tzinfo=UTC)
        assert row["created_at"].tzinfo == UTC

    async def test_a_naive_datetime_is_refused(self, conn: AsyncConnection, db: Database) -> None:
        naive = datetime(2026, 3, 1, 12, 0)  # no tzinfo: the point of the test
        stmt = insert(tasks_table).values(
            id=uuid.uuid4(),
            user_id="alice",
            title="Naive",
            completed=False,
            created_at=naive,
            updated_at=naive,
        )

        with pytest.raises(StatementError, match="naive datetime"):
            await conn.execute(stmt)
        await conn.rollback()

        assert await stored_tasks(db, "alice") == []


class TestPoolerDetection:
    @pytest.mark.parametrize(
        ("url", "pooler", "expected"),
        [
            (NEON_POOLER_URL, "auto", True),
            ("postgresql://u:p@db.example/app", "auto", False),
            (NEON_POOLER_URL, "none", False),
            ("postgresql://u:p@db.example/app", "pgbouncer", True),
        ],
    )
    def test_pooler_mode_follows_db_pooler_and_the_host_name(
        self, url: str, pooler: str, expected: bool
    ) -> None:
        settings = make_settings(database_url=url, db_pooler=pooler)

        assert uses_pgbouncer(settings) is expected

    async def test_neon_pooler_host_turns_off_statement_caches(self) -> None:
        database = create_database(make_settings(database_url=NEON_POOLER_URL))
        try:
            args = await driver_connect_args(database)
        finally:
            await database.dispose()

        assert args["statement_cache_size"] == 0
        assert args["prepared_statement_cache_size"] == 0
        assert args["ssl"] == "require"
        assert "statement_timeout" not in args["server_settings"]

    async def test_direct_host_keeps_statement_caches(self) -> None:
        database = create_database(make_settings(database_url="postgresql://u:p@db.example/app"))
        try:
            args = await driver_connect_args(database)
        finally:
            await database.dispose()

        assert "statement_cache_size" not in args
        assert "prepared_statement_cache_size" not in args
        assert args["server_settings"] == {
            "application_name": "todo-api",
            "statement_timeout": "15000",
        }


@pytest.mark.postgres_only
@pytest.mark.direct_postgres
@requires_postgres
class TestPostgresConnection:
    async def test_statement_timeout_is_the_configured_one(self) -> None:
        database = postgres_database(db_statement_timeout_ms=1234)
        try:
            assert await show(database, "statement_timeout") == "1234ms"
        finally:
            await database.dispose()

    async def test_statement_timeout_defaults_to_fifteen_seconds(self) -> None:
        database = postgres_database()
        try:
            assert await show(database, "statement_timeout") == "15s"
        finally:
            await database.dispose()

    async def test_application_name_identifies_the_service(self) -> None:
        database = postgres_database()
        try:
            assert await show(database, "application_name") == "todo-api"
        finally:
            await database.dispose()

    async def test_a_statement_past_the_timeout_is_cancelled(self) -> None:
        database = postgres_database(db_statement_timeout_ms=50)
        try:
            async with database.engine.connect() as conn:
                with pytest.raises(DBAPIError, match="statement timeout"):
                    await conn.execute(text("SELECT pg_sleep(5)"))
        finally:
            await database.dispose()

    async def test_a_cancelled_statement_counts_as_the_database_being_unavailable(
        self,
    ) -> None:
        database = postgres_database(db_statement_timeout_ms=50)
        try:
            async with database.engine.connect() as conn:
                with pytest.raises(DBAPIError) as caught:
                    await conn.execute(text("SELECT pg_sleep(5)"))
        finally:
            await database.dispose()

        # Rendered as 503 + Retry-After (DESIGN.md §5), not as a 500 "bug".
        assert is_database_unavailable(caught.value) is True

    async def test_every_query_has_a_client_side_timeout(self) -> None:
        # A stalled connection never lets the server's statement timeout fire.
        database = postgres_database(db_statement_timeout_ms=1500)
        try:
            args = await driver_connect_args(database)
        finally:
            await database.dispose()

        assert args["command_timeout"] == 3.5

    async def test_a_statement_is_committed_when_it_returns(self) -> None:
        # Run directly (autocommit: no BEGIN/COMMIT round trips), what it wrote is there for
        # every other connection at once.
        name = f"todo_direct_{uuid.uuid4().hex[:8]}"
        database = create_database(make_settings(database_url=await create_postgres_database(name)))
        try:
            await upgrade(database.engine)
            created = await create_task(database, user_id="direct", data=TaskCreate(title="Kept"))
            async with database.engine.connect() as other:
                titles = (
                    await other.execute(
                        text("SELECT title FROM tasks WHERE id = :id"), {"id": created["id"]}
                    )
                ).scalars()
                stored = list(titles)
        finally:
            await database.dispose()
            await drop_postgres_database(name)

        assert stored == ["Kept"]

    async def test_behind_a_pooler_each_operation_is_one_committed_transaction(self) -> None:
        # A transaction-pooling proxy keeps a prepare and its execute on one server connection
        # only inside a transaction; and what the operation wrote must be committed.
        name = f"todo_pooled_{uuid.uuid4().hex[:8]}"
        url = await create_postgres_database(name)
        database = create_database(make_settings(database_url=url, db_pooler="pgbouncer"))
        try:
            await upgrade(database.engine)
            assert isinstance(database, PostgresDatabase)
            assert database.options.transactional is True
            created = await create_task(database, user_id="pooled", data=TaskCreate(title="Kept"))
            toggled = await set_completed(
                database, user_id="pooled", task_id=str(created["id"]), completed=None
            )
            stored = await stored_tasks(database, "pooled")
        finally:
            await database.dispose()
            await drop_postgres_database(name)

        assert toggled["completed"] is True
        assert [dict(row) for row in stored] == [dict(toggled)]

    async def test_pgbouncer_mode_turns_off_statement_caches_and_queries_work(self) -> None:
        database = postgres_database(db_pooler="pgbouncer")
        try:
            args = await driver_connect_args(database)
            results = []
            for _ in range(3):
                async with database.engine.connect() as conn:
                    for number in range(3):
                        stmt = text("SELECT CAST(:n AS integer) + 1")
                        results.append((await conn.execute(stmt, {"n": number})).scalar_one())
        finally:
            await database.dispose()

        assert args["statement_cache_size"] == 0
        assert args["prepared_statement_cache_size"] == 0
        assert results == [1, 2, 3] * 3


class TestOnePool:
    def test_postgresql_serves_everything_from_one_asyncpg_pool(self) -> None:
        settings = make_settings(
            database_url="postgresql://u@127.0.0.1:5432/db",
            db_pool_size=4,
            db_max_overflow=2,
            db_pooler="none",
        )
        database = create_database(settings)

        assert isinstance(database, PostgresDatabase)
        assert database.options.max_size == 6
        assert database.options.transactional is False
        # Migrations open a connection of their own when they run; nothing is kept.
        assert isinstance(database.engine.sync_engine.pool, NullPool)

    def test_behind_a_pooler_each_operation_runs_in_a_transaction(self) -> None:
        settings = make_settings(
            database_url="postgresql://u@127.0.0.1:5432/db", db_pooler="pgbouncer"
        )
        database = create_database(settings)

        assert isinstance(database, PostgresDatabase)
        assert database.options.transactional is True

    def test_sqlite_runs_on_sqlalchemys_pool(self, tmp_path: Path) -> None:
        database = create_database(
            make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db", db_pool_size=3)
        )

        assert isinstance(database, SQLiteDatabase)
        assert database.pool_usage()[0].size == 3


class TestDirectPathConnectArguments:
    async def test_a_sqlalchemy_only_url_parameter_does_not_reach_asyncpg(self) -> None:
        base = postgres_url()
        if base is None:
            pytest.skip(f"{POSTGRES_ENV} is not set")
        url = f"{base}?prepared_statement_cache_size=50"
        database = create_database(make_settings(database_url=url))
        try:
            rows = await database.fetch(text("SELECT 1 AS one"), {})
        finally:
            await database.dispose()

        assert [dict(row) for row in rows] == [{"one": 1}]


async def test_database_errors_never_quote_the_statements_parameters(db: Database) -> None:
    """An error's text ends up in logs and error reports: it names the statement, not the
    values a client sent (a task's title may be anything)."""
    secret = "s3cr3t-title-never-logged"
    with pytest.raises(DBAPIError) as raised:
        async with db.engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO tasks (id, title) VALUES (:id, :title)"),
                {"id": uuid.uuid4().hex, "title": secret},
            )
    assert secret not in str(raised.value)
    assert "hidden due to hide_parameters" in str(raised.value)


async def _terminate_once(application: str, after_s: float) -> None:
    """End, from another connection, the backend of `application` that is asleep in a query."""
    await asyncio.sleep(after_s)
    admin = await asyncpg.connect(libpq_dsn(postgres_url() or ""))
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()",
            application,
        )
    finally:
        await admin.close()


@requires_postgres
@pytest.mark.direct_postgres
class TestConnectionLostInPoolerMode:
    """Behind a pooler each statement runs in a transaction of its own; a connection that dies
    inside it is still a lost connection (a read is repeated, a write is a 503), never the
    transaction's "connection is closed" surfacing as a 500."""

    def database(self, application: str) -> Database:
        url = make_url(postgres_url() or "").update_query_dict({"application_name": application})
        return create_database(
            make_settings(
                database_url=url.render_as_string(hide_password=False), db_pooler="pgbouncer"
            )
        )

    async def test_a_read_whose_connection_dies_is_repeated(self) -> None:
        application = f"todo-lost-read-{uuid.uuid4().hex[:8]}"
        database = self.database(application)
        try:
            killer = asyncio.create_task(_terminate_once(application, 0.3))
            rows = await database.fetch(select(func.pg_sleep(1).label("slept")), {})
            await killer
        finally:
            await database.dispose()

        assert [dict(row) for row in rows] == [{"slept": None}]

    async def test_a_write_whose_connection_dies_is_a_database_outage(self) -> None:
        application = f"todo-lost-write-{uuid.uuid4().hex[:8]}"
        database = self.database(application)
        try:
            killer = asyncio.create_task(_terminate_once(application, 0.3))
            with pytest.raises(DatabaseUnavailable):
                await database.execute(text("SELECT pg_sleep(1)"), {})
            await killer
        finally:
            await database.dispose()
