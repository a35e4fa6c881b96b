"""Apply the Alembic migrations shipped inside the package."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

# Key of the PostgreSQL advisory lock that serialises migrations across instances ("todo" in hex).
MIGRATION_LOCK_KEY = 0x746F646F


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


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest)."""
    async with engine.connect() as connection:
        await connection.run_sync(_upgrade, revision)
        await connection.commit()


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.connect() as connection:
        await connection.run_sync(_downgrade, revision)
        await connection.commit()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
