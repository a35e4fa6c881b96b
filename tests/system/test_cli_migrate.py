"""`todo-api migrate` as a real process: it creates the schema, says in one line when the
database is out of reach, and two started together on one database both succeed."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.databases import (
    fresh_postgres_database,
    make_settings,
    requires_postgres,
)
from tests.support.processes import run_cli
from tests.support.schema import HEAD_TABLES, read_schema, read_versions
from todo_api.cli import EXIT_DATABASE
from todo_api.db.connect import create_database
from todo_api.db.migrations import head_revision


def cli_env(database_url: str) -> dict[str, str]:
    """A minimal environment for the `todo-api` command: nothing from the developer's shell."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "DATABASE_URL": database_url}
    # PYTHONPATH to find the package; DB_POOLER when the suite runs through a pooler.
    for name in ("PYTHONPATH", "DB_POOLER"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


class TestMigrateCommand:
    def test_migrate_creates_the_schema_in_a_new_sqlite_file(self, tmp_path: Path) -> None:
        path = tmp_path / "cli.db"

        result = run_cli("migrate", cwd=tmp_path, env=cli_env(f"sqlite+aiosqlite:///{path}"))

        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        with sqlite3.connect(path) as conn:
            tables = sorted(
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            )
            versions = [v for (v,) in conn.execute("SELECT version_num FROM alembic_version")]
        assert tables == HEAD_TABLES
        assert versions == [head_revision()]

    def test_migrate_with_an_unreachable_database_exits_with_one_line(self, tmp_path: Path) -> None:
        url = f"sqlite+aiosqlite:///{tmp_path}/missing-dir/cli.db"

        result = run_cli("migrate", cwd=tmp_path, env=cli_env(url))

        assert result.returncode == EXIT_DATABASE
        assert "Traceback" not in result.stderr
        # The line naming the database it acts on, then the one reason it cannot.
        lines = result.stderr.splitlines()
        assert len(lines) == 2, result.stderr
        assert lines[0].endswith(f"migrate: SQLite file {tmp_path}/missing-dir/cli.db")
        assert lines[1].startswith("todo-api: cannot use the database at ")


@pytest.mark.postgres_only
@requires_postgres
class TestConcurrentUpgrade:
    @pytest.fixture
    async def pg_url(self) -> AsyncIterator[str]:
        async with fresh_postgres_database("todo_migrations") as url:
            yield url

    async def test_two_migrate_commands_started_together_both_succeed(
        self, pg_url: str, tmp_path: Path
    ) -> None:
        commands = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "todo_api.cli",
                "migrate",
                env=cli_env(pg_url),
                cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        outputs = await asyncio.gather(*(command.communicate() for command in commands))

        assert [command.returncode for command in commands] == [0, 0], outputs
        database = create_database(make_settings(database_url=pg_url))
        try:
            assert await read_versions(database) == [head_revision()]
            assert (await read_schema(database))["tables"] == HEAD_TABLES
        finally:
            await database.dispose()
