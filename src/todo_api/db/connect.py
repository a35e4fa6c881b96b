"""Build the process's `Database` from the settings: at start-up, once."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool, StaticPool

from todo_api.config import Settings
from todo_api.db.database import Database
from todo_api.db.postgres import PoolOptions, PostgresDatabase
from todo_api.db.sqlite import SQLITE_BUSY_TIMEOUT_MS, SQLiteDatabase
from todo_api.db.url import DatabaseTarget

DEFAULT_COMMAND_TIMEOUT_MS = 60_000
COMMAND_TIMEOUT_MARGIN_S = 2.0


def create_database(settings: Settings) -> Database:
    target = settings.database
    if target.is_sqlite:
        return _create_sqlite(target, settings)
    return _create_postgres(target, settings)


def uses_pgbouncer(settings: Settings) -> bool:
    """Whether to configure asyncpg for a transaction-pooling proxy."""
    if settings.db_pooler == "auto":
        return settings.database.looks_pooled
    return settings.db_pooler == "pgbouncer"


def _create_sqlite(target: DatabaseTarget, settings: Settings) -> SQLiteDatabase:
    kwargs: dict[str, Any] = {
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        # A database error's text would otherwise quote the statement's parameters (a task's
        # title, say) into logs and error reports.
        "hide_parameters": True,
    }
    if target.is_memory:
        kwargs["poolclass"] = StaticPool
    else:
        kwargs.update(
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
        )
    return SQLiteDatabase(create_async_engine(target.url, **kwargs), in_memory=target.is_memory)


def _create_postgres(target: DatabaseTarget, settings: Settings) -> PostgresDatabase:
    connect_args = postgres_connect_args(target, settings)
    # Migrations and administration only: a connection opened when needed and closed after, so
    # requests have the one pool below.
    engine = create_async_engine(
        target.url, poolclass=NullPool, connect_args=connect_args, hide_parameters=True
    )
    _, asyncpg_kwargs = engine.dialect.create_connect_args(target.url)
    asyncpg_kwargs.update(connect_args)
    # SQLAlchemy's own options, not asyncpg's.
    for name in ("prepared_statement_cache_size", "prepared_statement_name_func"):
        asyncpg_kwargs.pop(name, None)
    options = PoolOptions(
        max_size=settings.db_pool_size + settings.db_max_overflow,
        acquire_timeout=settings.db_pool_timeout,
        max_idle=float(max(settings.db_pool_recycle, 0)),
        transactional=uses_pgbouncer(settings),
    )
    return PostgresDatabase(engine=engine, connect_kwargs=asyncpg_kwargs, options=options)


def postgres_connect_args(target: DatabaseTarget, settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `asyncpg.connect` (through SQLAlchemy: also its own)."""
    connect_args: dict[str, Any] = dict(target.connect_args)
    server_settings: dict[str, str] = dict(connect_args.pop("server_settings", {}))
    server_settings.setdefault("application_name", "todo-api")
    pooled = uses_pgbouncer(settings)
    if target.server_options:
        server_settings["options"] = target.server_options
    if settings.db_statement_timeout_ms and not pooled:
        # Poolers reject unknown startup parameters; behind one, set the timeout on the role
        # (ALTER ROLE ... SET statement_timeout), as docs/configuration.md explains.
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    connect_args["server_settings"] = server_settings
    connect_args["timeout"] = settings.db_connect_timeout
    # A client-side bound on every query: the server's statement timeout cannot fire for a
    # query that never reached it over a stalled connection.
    statement_s = (settings.db_statement_timeout_ms or DEFAULT_COMMAND_TIMEOUT_MS) / 1000
    connect_args["command_timeout"] = statement_s + COMMAND_TIMEOUT_MARGIN_S
    if pooled:
        # A transaction-pooling proxy hands each transaction to any server connection, so named
        # prepared statements from an earlier transaction may not exist (or may collide).
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _unique_statement_name
    return connect_args


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid4().hex}__"
