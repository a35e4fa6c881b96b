"""Apply the Alembic migrations shipped inside the package."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

# Key of the PostgreSQL advisory lock that serialises migrations across instances ("todo" in hex).
MIGRATION_LOCK_KEY = 0x746F646F


# Indexes the migrations create only where the database offers them (pg_trgm), so the models do
# not declare them and comparing the models with a database leaves them out.
OPTIONAL_INDEX_SUFFIX = "_trgm"


def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    """Alembic's `include_name` hook: what comparing models and database looks at."""
    return not (type_ == "index" and name is not None and name.endswith(OPTIONAL_INDEX_SUFFIX))


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "todo_api:migrations")
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


# Alembic's `context` and `op` are module-level, so one process runs one migration at a time.
_in_process = asyncio.Lock()


async def _migrate(
    engine: AsyncEngine, step: Callable[[Connection, str], None], revision: str
) -> None:
    async with _in_process, engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Wait for other instances here, outside Alembic; env.py takes the same
            # (re-entrant) lock again inside the migration transaction.
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        await connection.run_sync(step, revision)
        await connection.commit()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest)."""
    await _migrate(engine, _upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _migrate(engine, _downgrade, revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
