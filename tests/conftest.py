"""The suite runs once on SQLite and once on PostgreSQL (when TEST_DATABASE_URL names one).

Each xdist worker migrates its own database once; each test starts from empty tables. Helpers
live in tests/support; everything under tests/system is marked `system`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support.databases import (
    POSTGRES_ENV,
    THROUGH_POOLER,
    create_postgres_database,
    drop_postgres_database,
    make_settings,
    postgres_url,
)
from todo_api.config import Settings
from todo_api.db.connect import create_database
from todo_api.db.database import Database
from todo_api.db.migrations import upgrade
from todo_api.main import create_app
from todo_api.models import metadata

SYSTEM = Path(__file__).parent / "system"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="the suite runs through a pooler; this checks a direct link")
    for item in items:
        if item.path.is_relative_to(SYSTEM):
            item.add_marker(pytest.mark.system)
        if THROUGH_POOLER and item.get_closest_marker("direct_postgres"):
            item.add_marker(skip)


_FINISHED = pytest.StashKey[bool]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    session.config.stash[_FINISHED] = True


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """The run's last line: which databases the suite ran on, and how to run the rest.

    Written here rather than in pytest_terminal_summary, which pytest's own "N passed" line
    follows. Only by the process that reports (not an xdist worker), and only after a session.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or hasattr(config, "workerinput") or not config.stash.get(_FINISHED, False):
        return
    skipped = len(reporter.stats.get("skipped", []))
    if postgres_url() is None:
        ran = "SQLite only"
        rest = (
            f"for PostgreSQL, {POSTGRES_ENV}=postgresql://postgres@127.0.0.1:5432/test make test; "
            "through PgBouncer, make test-pgbouncer"
        )
    elif THROUGH_POOLER:
        ran = "SQLite and PostgreSQL through PgBouncer"
        rest = "direct PostgreSQL: make test without DB_POOLER"
    else:
        ran = "SQLite and PostgreSQL"
        rest = "through PgBouncer: make test-pgbouncer"
    reporter.write_line(f"databases: {ran} ({skipped} skipped); the rest: {rest}")


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgresql" and postgres_url() is None:
        pytest.skip(f"{POSTGRES_ENV} is not set: the PostgreSQL half of the suite is skipped")
    return name


@pytest.fixture(scope="session")
def worker_tag(worker_id: str) -> str:
    return f"{worker_id}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
async def database(
    backend: str, worker_tag: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Database]:
    """This worker's migrated database on `backend`, shared by its tests."""
    pg_name = f"todo_test_{worker_tag}"
    if backend == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "todo.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = await create_postgres_database(pg_name)
    db = create_database(make_settings(database_url=url))
    await upgrade(db.engine)
    try:
        yield db
    finally:
        await db.dispose()
        if backend == "postgresql":
            await drop_postgres_database(pg_name)


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    """The shared database, emptied after the test so every test starts clean."""
    yield database
    async with database.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(delete(table))


@pytest.fixture
def settings(db: Database) -> Settings:
    return make_settings(database_url=db.engine.url.render_as_string(hide_password=False))


@pytest.fixture
def app(db: Database, settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings)
    application.state.database = db
    yield application
    application.dependency_overrides.clear()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def conn(db: Database) -> AsyncIterator[AsyncConnection]:
    """A SQLAlchemy connection of its own to the test's database."""
    async with db.engine.connect() as s:
        yield s
