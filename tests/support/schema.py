"""The schema a database holds, read back: its tables, the tasks table's columns and indexes
(expression indexes included), and the Alembic versions recorded."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from todo_api.db.database import Database


def schema(conn: Connection) -> dict[str, Any]:
    inspector = inspect(conn)
    tables = sorted(inspector.get_table_names())
    if "tasks" not in tables:
        return {"tables": tables}
    return {
        "tables": tables,
        "columns": [column["name"] for column in inspector.get_columns("tasks")],
        "indexes": {
            index["name"]: (index["column_names"], index.get("column_sorting", {}))
            for index in inspector.get_indexes("tasks")
        },
        # The inspector leaves out expression indexes; the catalogue lists them all.
        "index_names": set(conn.execute(text(INDEX_NAMES_SQL[conn.dialect.name])).scalars()),
    }


# Every table at head, in name order.
HEAD_TABLES = ["alembic_version", "idempotency_keys", "tasks", "user_clocks"]

INDEX_NAMES_SQL = {
    "postgresql": "SELECT indexname FROM pg_indexes WHERE tablename = 'tasks' "
    "AND indexname <> 'pk_tasks'",
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' "
    "AND name NOT LIKE 'sqlite_autoindex%'",
}


async def read_schema(database: Database) -> dict[str, Any]:
    async with database.engine.connect() as conn:
        return await conn.run_sync(schema)


async def read_versions(database: Database) -> list[str]:
    """Every row of alembic_version: exactly one head after a clean upgrade."""
    async with database.engine.connect() as conn:
        result = await conn.execute(text("SELECT version_num FROM alembic_version"))
        return list(result.scalars().all())
