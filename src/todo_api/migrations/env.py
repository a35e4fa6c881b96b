"""Alembic environment. Migrations run on a connection handed in by `todo_api.db.migrations`, or,
for the `alembic` command line, on an engine built from the service's own settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from todo_api.db.migrations import MIGRATION_LOCK_KEY, include_name
from todo_api.models import metadata

config = context.config


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Instances starting together queue here; the later ones then find nothing to do.
            # A transaction-scoped lock also works through a transaction-pooling proxy.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        context.run_migrations()


async def _run_with_own_engine() -> None:
    from todo_api.config import load_settings
    from todo_api.db.connect import create_database

    database = create_database(load_settings())
    try:
        async with database.engine.connect() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await database.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")

_connection = config.attributes.get("connection")
if _connection is not None:
    run_migrations(_connection)
else:
    asyncio.run(_run_with_own_engine())
