"""PostgreSQL: SQLAlchemy Core statements, compiled once for asyncpg, run on one asyncpg pool.

That pool serves everything the process does (requests, Idempotency-Key transactions, `/health`,
purges), so a worker never holds more than DB_POOL_SIZE + DB_MAX_OVERFLOW connections.
SQLAlchemy builds and compiles the statements and runs the migrations (on a connection of their
own, opened for them and closed after); what is skipped per request is its async pool and
execution layer (greenlet hand-offs, cursor adaption, result wrapping), which measured at about
270 µs of a 780 µs request.

Behind a transaction-pooling proxy (PgBouncer, Neon's pooled endpoints) each operation runs in
a transaction of its own: only within one does the proxy keep a statement's prepare and its
execution on the same server connection. asyncpg's statement cache is then off.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.transaction import Transaction
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from todo_api.db.database import Database, Executor, Row, Statement
from todo_api.db.faults import CONNECTION_LOST
from todo_api.observability.metrics import PoolUsage

COMPILED_CACHE_SIZE = 2048


@dataclass(frozen=True)
class PoolOptions:
    """How the asyncpg pool is sized and kept (from the DB_* settings)."""

    max_size: int
    acquire_timeout: float
    # Seconds an idle connection is kept before it is closed (0: forever).
    max_idle: float
    # Behind a transaction-pooling proxy: each operation in a transaction of its own.
    transactional: bool


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    defaults: Mapping[str, Any]
    processors: Mapping[str, Callable[[Any], Any]]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name in self.names:
            value = params[name] if name in params else self.defaults[name]
            processor = self.processors.get(name)
            values.append(processor(value) if processor is not None else value)
        return values


class StatementCompiler:
    """SQLAlchemy statements as asyncpg runs them: SQL text with `$1`, `$2`, ... and a function
    turning named parameters into positional arguments, each through its type's bind
    processing. Compiled once per statement object."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._compiled: OrderedDict[int, tuple[ClauseElement, _Compiled]] = OrderedDict()

    def prepare(self, stmt: ClauseElement, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        compiled = self._compile(stmt)
        return compiled.sql, compiled.arguments(params)

    def _compile(self, stmt: ClauseElement) -> _Compiled:
        # Statements are built once (module constants, or cached per shape), so their identity is
        # a stable cache key; the statement itself is kept alive alongside, so an id is never
        # reused for another. The least recently used entries go beyond a bound.
        cached = self._compiled.get(id(stmt))
        if cached is not None:
            self._compiled.move_to_end(id(stmt))
            return cached[1]
        compiled = stmt.compile(dialect=self._dialect)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"not a SQL statement: {stmt!r}")
        names = tuple(compiled.positiontup or ())
        processors = {}
        for name in names:
            # The type as this dialect implements it (public API), and its bind processing.
            bind_type = compiled.binds[name].type.dialect_impl(self._dialect)
            processor = bind_type.bind_processor(self._dialect)
            if processor is not None:
                processors[name] = processor
        result = _Compiled(
            sql=compiled.string, names=names, defaults=compiled.params, processors=processors
        )
        self._compiled[id(stmt)] = (stmt, result)
        if len(self._compiled) > COMPILED_CACHE_SIZE:
            self._compiled.popitem(last=False)
        return result


class PostgresDatabase(Database):
    backend = "postgresql"

    def __init__(
        self, *, engine: AsyncEngine, connect_kwargs: Mapping[str, Any], options: PoolOptions
    ) -> None:
        super().__init__(engine)
        self.compiler = StatementCompiler(engine.dialect)
        self._connect_kwargs = dict(connect_kwargs)
        self.options = options
        self._pool: asyncpg.Pool | None = None
        self._starting = asyncio.Lock()

    async def _fetch(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        rows: list[asyncpg.Record] = await self._run("fetch", stmt, params)
        return rows

    async def _execute(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        return _row_count(await self._run("execute", stmt, params))

    async def _run(self, method: str, stmt: Statement, params: Mapping[str, Any]) -> Any:
        """One statement on a pooled connection: in autocommit mode, or behind a pooler inside
        a transaction committed when it returns. (Written out rather than through the context
        managers below: this is every request's path.)"""
        sql, arguments = self.compiler.prepare(stmt, params)
        pool = self._pool or await self._start()
        # `asyncio.timeout` rather than `acquire(timeout=...)`: that one wraps every acquisition
        # in a task of its own (`wait_for`), which costs more than the wait it guards.
        async with asyncio.timeout(self.options.acquire_timeout):
            conn = await pool.acquire()
        try:
            if not self.options.transactional:
                return await getattr(conn, method)(sql, *arguments)
            transaction = conn.transaction()
            await transaction.start()
            try:
                result = await getattr(conn, method)(sql, *arguments)
            except BaseException:
                await _roll_back(transaction)
                raise
            await _commit(conn, transaction)
            return result
        except asyncpg.InternalClientError as exc:
            raise _lost(conn) from exc
        finally:
            await pool.release(conn)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Executor]:
        async with self._acquired() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                yield _Transaction(self.compiler, conn)
            except BaseException:
                await _roll_back(transaction)
                raise
            await _commit(conn, transaction)

    @asynccontextmanager
    async def _acquired(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool or await self._start()
        async with asyncio.timeout(self.options.acquire_timeout):
            conn = await pool.acquire()
        try:
            yield conn
        except asyncpg.InternalClientError as exc:
            raise _lost(conn) from exc
        finally:
            await pool.release(conn)

    def _connection_lost(self, exc: Exception) -> bool:
        return isinstance(exc, CONNECTION_LOST)

    async def _renew_connections(self) -> None:
        if self._pool is not None:
            await self._pool.expire_connections()

    async def _start(self) -> asyncpg.Pool:
        async with self._starting:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    min_size=0,
                    max_size=self.options.max_size,
                    max_inactive_connection_lifetime=self.options.max_idle,
                    reset=_keep_session,
                    **self._connect_kwargs,
                )
        return self._pool

    def pool_usage(self) -> list[PoolUsage]:
        """The most connections the pool opens, how many are open and in use, how many idle
        (none open before the first statement starts the pool)."""
        most = self.options.max_size
        if self._pool is None:
            return [PoolUsage(self.backend, most, 0, 0, 0)]
        opened, idle = self._pool.get_size(), self._pool.get_idle_size()
        return [PoolUsage(self.backend, most, opened - idle, idle, 0)]

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await self.engine.dispose()


class _Transaction:
    """Statements run on the one connection of a `PostgresDatabase.transaction()`."""

    def __init__(self, compiler: StatementCompiler, conn: asyncpg.Connection) -> None:
        self._compiler = compiler
        self._conn = conn

    async def fetch(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        sql, arguments = self._compiler.prepare(stmt, params)
        rows: list[asyncpg.Record] = await self._conn.fetch(sql, *arguments)
        return rows

    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        sql, arguments = self._compiler.prepare(stmt, params)
        return _row_count(await self._conn.execute(sql, *arguments))


async def _roll_back(transaction: Transaction) -> None:
    """Roll back after a failure. On a connection that died, the server has rolled back
    already: the error that says so (connection lost: 503) is the one to raise, not the
    rollback's "connection closed" or "released"."""
    with contextlib.suppress(*CONNECTION_LOST, asyncpg.InterfaceError):
        await transaction.rollback()


async def _commit(conn: asyncpg.Connection, transaction: Transaction) -> None:
    try:
        await transaction.commit()
    except asyncpg.InterfaceError as exc:
        # asyncpg says "the underlying connection is closed": the connection was lost, which
        # is how every other part of the service knows this fault (503, never a 500).
        if conn.is_closed():
            raise asyncpg.exceptions.ConnectionDoesNotExistError(
                "the connection was lost at commit"
            ) from exc
        raise


def _lost(conn: asyncpg.Connection) -> asyncpg.exceptions.ConnectionDoesNotExistError:
    """The error of a connection asyncpg can no longer use: it met a message it did not expect,
    such as the farewell a server sends an idle connection it terminates (a restart, a
    failover, `pg_terminate_backend`), read only when the next statement is sent. The connection
    is closed and the failure is a lost connection (a read is retried on a fresh one, 503
    otherwise), not a 500."""
    conn.terminate()
    return asyncpg.exceptions.ConnectionDoesNotExistError("the connection was lost")


def _row_count(status: str) -> int:
    # The command tag, e.g. "DELETE 3".
    return int(status.rsplit(" ", 1)[-1])


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """Skip asyncpg's RESET ALL/UNLISTEN round trip on every release: these statements change
    no session state (asyncpg still rolls back a transaction left open)."""
