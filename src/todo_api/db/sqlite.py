"""SQLite, embedded: statements run through SQLAlchemy's async engine, whose pool is the one pool
of the process. Each connection gets WAL, a busy timeout and the SQL functions the statements
call that SQLite lacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import QueuePool

from todo_api.db.database import Database, Executor, Row, Statement
from todo_api.observability.metrics import PoolUsage

SQLITE_BUSY_TIMEOUT_MS = 5000
# SQL functions registered on every connection (names the statements call them by).
NEXT_TIMESTAMP = "todo_next_timestamp"
FOLD = "todo_fold"


def next_timestamp(previous: str | None, now: str) -> str:
    """`now`, or one microsecond after `previous` if that is not earlier. Timestamps are stored
    as UTC text in SQLAlchemy's format, which sorts like the instants it names."""
    moment = datetime.fromisoformat(now)
    if previous:
        moment = max(moment, datetime.fromisoformat(previous) + timedelta(microseconds=1))
    return moment.isoformat(sep=" ", timespec="microseconds")


def fold(value: str | None) -> str | None:
    """Case folding, which SQLite's own `lower()` and `LIKE` do only for ASCII."""
    return None if value is None else value.casefold()


def configure_connection(dbapi_connection: Any, _record: Any) -> None:
    """The engine's `connect` hook: WAL lets readers proceed while one writer commits; the busy
    timeout makes a second writer wait for the lock instead of failing with "database is
    locked"."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()
    dbapi_connection.create_function(NEXT_TIMESTAMP, 2, next_timestamp)
    dbapi_connection.create_function(FOLD, 1, fold, deterministic=True)


class SQLiteDatabase(Database):
    backend = "sqlite"

    def __init__(self, engine: AsyncEngine, *, in_memory: bool) -> None:
        super().__init__(engine)
        event.listen(engine.sync_engine, "connect", configure_connection)
        # An in-memory database is one connection every request shares: one operation (a
        # statement, or a whole transaction) at a time, so no request's statement runs inside,
        # and is rolled back with, another request's transaction.
        self._serial = asyncio.Lock() if in_memory else None

    async def _fetch(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        async with self._operation() as conn:
            return cast(Sequence[Row], (await conn.execute(stmt, params)).mappings().all())

    async def _execute(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        async with self._operation() as conn:
            count: int = (await conn.execute(stmt, params)).rowcount
            return count

    @asynccontextmanager
    async def _operation(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection for one statement, committed on exit."""
        async with AsyncExitStack() as stack:
            if self._serial is not None:
                await stack.enter_async_context(self._serial)
            yield await stack.enter_async_context(self.engine.begin())

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Executor]:
        async with self._operation() as conn:
            # The driver opens a transaction by itself only before a statement that starts
            # with INSERT, UPDATE or DELETE (ours may start with WITH). IMMEDIATE takes the
            # write lock at once: what the transaction reads stays true until it commits.
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield _Transaction(conn)

    def _connection_lost(self, exc: Exception) -> bool:
        return isinstance(exc, DBAPIError) and exc.connection_invalidated

    async def _renew_connections(self) -> None:
        """Nothing to do: a local file has no server to lose, so one failed connection says
        nothing about the others, and SQLAlchemy has already discarded that one."""

    def pool_usage(self) -> list[PoolUsage]:
        pool = self.engine.sync_engine.pool
        if not isinstance(pool, QueuePool):
            return []  # an in-memory database's single connection
        overflow = max(pool.overflow(), 0)
        return [PoolUsage(self.backend, pool.size(), pool.checkedout(), pool.checkedin(), overflow)]

    async def dispose(self) -> None:
        await self.engine.dispose()


class _Transaction:
    """Statements run on one connection inside its transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def fetch(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        return cast(Sequence[Row], (await self._conn.execute(stmt, params)).mappings().all())

    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        count: int = (await self._conn.execute(stmt, params)).rowcount
        return count
