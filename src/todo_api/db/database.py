"""Engine, connections and driver settings: built once per process, at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias
from uuid import uuid4

from sqlalchemy import Delete, Insert, Select, Update, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from todo_api.config import Settings
from todo_api.db.postgres import DirectPostgres
from todo_api.db.url import DatabaseTarget
from todo_api.models.types import (
    SQLITE_FOLD,
    SQLITE_NEXT_TIMESTAMP,
    sqlite_fold,
    sqlite_next_timestamp,
)
from todo_api.observability.metrics import timed_query

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5000
# A pooled PostgreSQL connection idle longer than this is pinged before use.
IDLE_PING_AFTER_S = 10.0
# Connections kept for migrations and multi-statement transactions (requests have their own).
TRANSACTIONAL_POOL_SIZE = 2
DEFAULT_COMMAND_TIMEOUT_MS = 60_000
COMMAND_TIMEOUT_MARGIN_S = 2.0


Statement: TypeAlias = Select[Any] | Insert | Update | Delete


class Executor(Protocol):
    """What runs a service's statements: the database itself (each statement on its own), or
    one transaction of it (`Database.transaction()`)."""

    def fetch(self, stmt: Statement, params: Mapping[str, Any]) -> Awaitable[Sequence[Any]]: ...

    def execute(self, stmt: Statement, params: Mapping[str, Any]) -> Awaitable[int]: ...


class _Transaction:
    """Statements run on one SQLAlchemy connection inside its transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def fetch(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Any]:
        return (await self._conn.execute(stmt, params)).mappings().all()

    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        count: int = (await self._conn.execute(stmt, params)).rowcount
        return count


@dataclass(frozen=True)
class Database:
    """The process's engine, and how requests get a connection from it.

    Every service operation is one SQL statement, atomic on its own, so requests run in
    autocommit mode: no BEGIN/COMMIT round trips around each statement. Migrations and anything
    needing several statements in one transaction use `engine` and `begin()`.
    """

    engine: AsyncEngine
    autocommit: AsyncEngine
    # Behind a transaction-pooling proxy, a statement prepared and executed in two round trips
    # must stay on one server connection, which only a transaction guarantees.
    transactional_requests: bool = False
    # PostgreSQL without a pooler: single statements skip SQLAlchemy's execution layer.
    direct: DirectPostgres | None = None
    # An in-memory SQLite database is one connection every request shares: one operation (a
    # statement, or a whole transaction) at a time, so no request's statement runs inside, and
    # is rolled back with, another request's transaction.
    serial: asyncio.Lock | None = None

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def connect(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A pooled connection for one operation (`async with db.connect() as conn`): in
        autocommit mode, or behind a pooler inside a transaction committed on exit."""
        opened = self.engine.begin() if self.transactional_requests else self.autocommit.connect()
        if self.serial is not None:
            return _holding(self.serial, opened)
        return opened

    @timed_query("fetch")
    async def fetch(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Any]:
        """Run one self-contained statement and return its rows (as mappings)."""
        if self.direct is not None:
            return await self.direct.fetch(stmt, params)
        try:
            return await self._fetch_once(stmt, params)
        except DBAPIError as exc:
            # As on the direct path: a read whose connection died under it is repeated once on
            # a fresh connection; a write never is (it may have committed before it died).
            if not (exc.connection_invalidated and isinstance(stmt, Select)):
                raise
            logger.warning("connection lost during a read; retrying on a fresh connection")
        return await self._fetch_once(stmt, params)

    async def _fetch_once(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Any]:
        async with self.connect() as conn:
            return (await conn.execute(stmt, params)).mappings().all()

    @timed_query("execute")
    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        """Run one self-contained statement that returns no rows; how many rows it touched."""
        if self.direct is not None:
            return await self.direct.execute(stmt, params)
        async with self.connect() as conn:
            count: int = (await conn.execute(stmt, params)).rowcount
            return count

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        """Several statements as one transaction: committed when the block ends, rolled back
        (nothing written) when it raises."""
        if self.direct is not None:
            async with self.direct.transaction() as direct:
                yield direct
            return
        async with contextlib.AsyncExitStack() as stack:
            if self.serial is not None:
                await stack.enter_async_context(self.serial)
            conn = await stack.enter_async_context(self.engine.begin())
            if self.backend == "sqlite":
                # The driver opens a transaction by itself only before a statement that starts
                # with INSERT, UPDATE or DELETE (ours may start with WITH). IMMEDIATE takes the
                # write lock at once: what the transaction reads stays true until it commits.
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield _Transaction(conn)

    async def ping(self) -> None:
        """Run a trivial query; raises when the database cannot be reached."""
        async with self.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self.direct is not None:
            await self.direct.close()
        await self.engine.dispose()
        if self.autocommit.sync_engine.pool is not self.engine.sync_engine.pool:
            await self.autocommit.dispose()


@contextlib.asynccontextmanager
async def _holding(
    lock: asyncio.Lock, opened: AbstractAsyncContextManager[AsyncConnection]
) -> AsyncIterator[AsyncConnection]:
    async with lock, opened as conn:
        yield conn


# Purges delete a batch at a time: each statement stays short (well within the statement
# timeout, its locks held briefly) however large the backlog.
PURGE_BATCH = 5000


async def delete_in_batches(
    db: Database, stmt: Delete, params: Mapping[str, Any], batch: int = PURGE_BATCH
) -> int:
    """Run a DELETE of at most `batch` rows (its `batch` parameter) until one deletes fewer;
    how many rows it deleted in all."""
    total = 0
    while True:
        deleted = await db.execute(stmt, {**params, "batch": batch})
        total += deleted
        if deleted < batch:
            return total


def uses_pgbouncer(settings: Settings) -> bool:
    """Whether to configure asyncpg for a transaction-pooling proxy."""
    if settings.db_pooler == "auto":
        return settings.database.looks_pooled
    return settings.db_pooler == "pgbouncer"


def create_database(settings: Settings) -> Database:
    target = settings.database
    transactional_requests = not target.is_sqlite and uses_pgbouncer(settings)
    if target.is_memory or transactional_requests:
        # One pool serves everything: an in-memory database exists only on its one connection,
        # and behind a pooler requests run in transactions anyway.
        engine = _create_engine(target, settings)
        return Database(
            engine=engine,
            autocommit=engine.execution_options(isolation_level="AUTOCOMMIT"),
            transactional_requests=transactional_requests,
            serial=asyncio.Lock() if target.is_memory else None,
        )
    # Requests get a pool whose connections stay in autocommit mode, so a checkout switches and
    # resets nothing; migrations and multi-statement work use a small pool of their own.
    autocommit = _create_engine(
        target, settings, isolation_level="AUTOCOMMIT", pool_reset_on_return=None
    )
    direct = None
    if not target.is_sqlite:
        direct = DirectPostgres(
            dialect=autocommit.dialect,
            url=target.url.render_as_string(hide_password=False),
            connect_args=_postgres_connect_args(target, settings),
            max_size=settings.db_pool_size + settings.db_max_overflow,
            acquire_timeout=settings.db_pool_timeout,
            recycle=float(settings.db_pool_recycle if settings.db_pool_recycle > 0 else 0),
        )
    return Database(
        engine=_create_engine(target, settings, pool_size=TRANSACTIONAL_POOL_SIZE),
        autocommit=autocommit,
        direct=direct,
    )


def _create_engine(target: DatabaseTarget, settings: Settings, **options: Any) -> AsyncEngine:
    # A database error's text would otherwise quote the statement's parameters (a task's title,
    # say) into logs and error reports.
    options.setdefault("hide_parameters", True)
    if target.is_sqlite:
        engine = _create_sqlite_engine(target, settings, **options)
    else:
        engine = _create_postgres_engine(target, settings, **options)
    event.listen(engine.sync_engine.pool, "checkin", _remember_checkin)
    if not target.is_sqlite:
        event.listen(engine.sync_engine.pool, "checkout", _ping_if_idle)
    return engine


def _remember_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Pre-ping, but only a connection that sat idle: a busy pool pays no extra round trip,
    while one left alone long enough for the server or a proxy to drop it is checked first."""
    idle_since = record.info.get("checked_in_at")
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_AFTER_S:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        # The pool discards this connection and checks out (or opens) another.
        raise DisconnectionError() from exc


def _create_sqlite_engine(
    target: DatabaseTarget, settings: Settings, **options: Any
) -> AsyncEngine:
    kwargs: dict[str, Any] = {
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    }
    if target.is_memory:
        kwargs["poolclass"] = StaticPool
    else:
        kwargs.update(
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
        )
    kwargs.update(options)
    engine = create_async_engine(target.url, **kwargs)
    event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers proceed while one writer commits; the busy timeout makes a second writer
    # wait for the lock instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()
    dbapi_connection.create_function(SQLITE_NEXT_TIMESTAMP, 2, sqlite_next_timestamp)
    dbapi_connection.create_function(SQLITE_FOLD, 1, sqlite_fold, deterministic=True)


def _create_postgres_engine(
    target: DatabaseTarget, settings: Settings, **options: Any
) -> AsyncEngine:
    kwargs: dict[str, Any] = {
        "connect_args": _postgres_connect_args(target, settings),
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "pool_recycle": settings.db_pool_recycle,
        **options,
    }
    return create_async_engine(target.url, **kwargs)


def _postgres_connect_args(target: DatabaseTarget, settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `asyncpg.connect`."""
    connect_args: dict[str, Any] = dict(target.connect_args)
    server_settings: dict[str, str] = dict(connect_args.pop("server_settings", {}))
    server_settings.setdefault("application_name", "todo-api")
    pooled = uses_pgbouncer(settings)
    if target.server_options:
        server_settings["options"] = target.server_options
    if settings.db_statement_timeout_ms and not pooled:
        # Poolers reject unknown startup parameters; behind one, set the timeout on the role
        # (ALTER ROLE ... SET statement_timeout), as the README explains.
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    connect_args["server_settings"] = server_settings
    connect_args["timeout"] = settings.db_connect_timeout
    # A client-side bound on every query (and the idle ping): the server's statement timeout
    # cannot fire for a query that never reached it over a stalled connection.
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
