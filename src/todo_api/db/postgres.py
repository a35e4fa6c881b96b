"""The PostgreSQL hot path: SQLAlchemy Core statements, compiled once for asyncpg, run on an
asyncpg pool of their own.

SQLAlchemy still builds every statement, defines the types and runs the migrations; what this
skips per request is its async pool and execution layer (greenlet hand-offs, cursor adaption,
result wrapping), which measured at about 270 µs of a 780 µs request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.sql.compiler import SQLCompiler

COMPILED_CACHE_SIZE = 2048
# The connection itself failed (not the statement): the server or the network went away.
CONNECTION_LOST = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    ConnectionError,
)
logger = logging.getLogger(__name__)


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


class DirectPostgres:
    def __init__(
        self,
        *,
        dialect: Dialect,
        url: str,
        connect_args: Mapping[str, Any],
        max_size: int,
        acquire_timeout: float,
        recycle: float,
    ) -> None:
        self._dialect = dialect
        _, kwargs = dialect.create_connect_args(make_url(url))
        kwargs.pop("prepared_statement_cache_size", None)  # SQLAlchemy's own, not asyncpg's
        self._connect_kwargs = {**kwargs, **connect_args}
        self._max_size = max_size
        self._acquire_timeout = acquire_timeout
        self._recycle = recycle
        self._pool: asyncpg.Pool | None = None
        self._starting = asyncio.Lock()
        self._compiled: OrderedDict[int, tuple[ClauseElement, _Compiled]] = OrderedDict()

    def prepare(self, stmt: ClauseElement, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The statement as asyncpg runs it: its SQL (`$1`, `$2`, ...) and positional arguments."""
        compiled = self._compile(stmt)
        return compiled.sql, compiled.arguments(params)

    async def fetch(
        self, stmt: ClauseElement, params: Mapping[str, Any]
    ) -> Sequence[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run("fetch", stmt, params)
        return rows

    async def execute(self, stmt: ClauseElement, params: Mapping[str, Any]) -> int:
        """Run a statement that returns no rows; the number of rows it touched."""
        status: str = await self._run("execute", stmt, params)
        # The command tag, e.g. "DELETE 3".
        return int(status.rsplit(" ", 1)[-1])

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[DirectTransaction]:
        """One connection in a transaction, committed when the block ends and rolled back when
        it raises. Nothing in it is retried: the caller decides what a lost connection means."""
        pool = self._pool or await self._start()
        async with asyncio.timeout(self._acquire_timeout):
            conn = await pool.acquire()
        try:
            transaction = conn.transaction()
            await transaction.start()
            try:
                yield DirectTransaction(self, conn)
            except BaseException:
                # On a connection that died (the pool has let go of it), the server has rolled
                # back already: the error that says so (connection lost: 503) is the one to
                # raise, not the rollback's "connection closed" or "released".
                with contextlib.suppress(*CONNECTION_LOST, asyncpg.InterfaceError):
                    await transaction.rollback()
                raise
            await transaction.commit()
        finally:
            await pool.release(conn)

    async def _run(self, method: str, stmt: ClauseElement, params: Mapping[str, Any]) -> Any:
        compiled = self._compile(stmt)
        arguments = compiled.arguments(params)
        try:
            return await self._once(method, compiled.sql, arguments)
        except CONNECTION_LOST:
            # A read whose connection died under it is repeated once on a fresh connection; a
            # write never is (it may have committed before the connection died).
            if not isinstance(stmt, Select):
                raise
            logger.warning("connection lost during a read; retrying on a fresh connection")
        return await self._once(method, compiled.sql, arguments)

    async def _once(self, method: str, sql: str, arguments: list[Any]) -> Any:
        pool = self._pool or await self._start()
        # `asyncio.timeout` rather than `acquire(timeout=...)`: that one wraps every acquisition
        # in a task of its own (`wait_for`), which costs more than the wait it guards.
        async with asyncio.timeout(self._acquire_timeout):
            conn = await pool.acquire()
        try:
            return await getattr(conn, method)(sql, *arguments)
        finally:
            await pool.release(conn)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def pool_usage(self) -> tuple[int, int, int]:
        """For metrics: the most connections the pool opens, how many are open, how many of those
        are idle (none open before the first statement starts the pool)."""
        if self._pool is None:
            return self._max_size, 0, 0
        return self._max_size, self._pool.get_size(), self._pool.get_idle_size()

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
            processor = compiled.binds[name].type._cached_bind_processor(self._dialect)
            if processor is not None:
                processors[name] = processor
        result = _Compiled(
            sql=compiled.string, names=names, defaults=compiled.params, processors=processors
        )
        self._compiled[id(stmt)] = (stmt, result)
        if len(self._compiled) > COMPILED_CACHE_SIZE:
            self._compiled.popitem(last=False)
        return result

    async def _start(self) -> asyncpg.Pool:
        async with self._starting:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    min_size=0,
                    max_size=self._max_size,
                    max_inactive_connection_lifetime=self._recycle,
                    reset=_keep_session,
                    **self._connect_kwargs,
                )
        return self._pool


class DirectTransaction:
    """Statements run on the one connection of a `DirectPostgres.transaction()`."""

    def __init__(self, owner: DirectPostgres, conn: asyncpg.Connection) -> None:
        self._owner = owner
        self._conn = conn

    async def fetch(
        self, stmt: ClauseElement, params: Mapping[str, Any]
    ) -> Sequence[asyncpg.Record]:
        sql, arguments = self._owner.prepare(stmt, params)
        rows: list[asyncpg.Record] = await self._conn.fetch(sql, *arguments)
        return rows

    async def execute(self, stmt: ClauseElement, params: Mapping[str, Any]) -> int:
        sql, arguments = self._owner.prepare(stmt, params)
        status: str = await self._conn.execute(sql, *arguments)
        return int(status.rsplit(" ", 1)[-1])


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """Skip asyncpg's RESET ALL/UNLISTEN round trip on every release: these statements change
    no session state (asyncpg still rolls back a transaction left open)."""
