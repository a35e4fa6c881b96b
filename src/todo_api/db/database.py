"""What services run their statements on: one `Database` per process, built at start-up, and
its transactions. Two kinds exist, one per backend (`postgres.PostgresDatabase`,
`sqlite.SQLiteDatabase`); both take SQLAlchemy Core statements and share the rules written
here: a read whose connection died under it is repeated once, a fault of the database itself
becomes `DatabaseUnavailable` (503), and every statement is timed for the metrics."""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ClassVar, Protocol, TypeAlias, TypeVar

from sqlalchemy import Delete, Insert, Select, TextClause, Update, text
from sqlalchemy.ext.asyncio import AsyncEngine

from todo_api.db.faults import is_database_unavailable
from todo_api.errors import DatabaseUnavailable
from todo_api.observability.metrics import PoolUsage, timed_query

logger = logging.getLogger(__name__)

Statement: TypeAlias = Select[Any] | Insert | Update | Delete | TextClause
Row: TypeAlias = Mapping[str, Any]
T = TypeVar("T")

_PING = text("SELECT 1")


class Executor(Protocol):
    """What runs a service's statements: the database itself (each statement on its own,
    committed when it returns), or one transaction of it (`Database.transaction()`)."""

    def fetch(self, stmt: Statement, params: Mapping[str, Any]) -> Awaitable[Sequence[Row]]: ...

    def execute(self, stmt: Statement, params: Mapping[str, Any]) -> Awaitable[int]: ...


class Database(ABC):
    """The process's connections to one database. Each statement run on it directly is atomic on
    its own and committed when the call returns; `transaction()` groups several."""

    backend: ClassVar[str]

    def __init__(self, engine: AsyncEngine) -> None:
        # For migrations and administration (on PostgreSQL it keeps no connection open).
        self.engine = engine
        # When (time.monotonic()) a statement last completed: evidence that the database
        # serves, which readiness reads before it spends a query of its own.
        self.answered_at = -math.inf

    @timed_query("fetch")
    async def fetch(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        """Run one self-contained statement and return its rows (as mappings)."""
        return await self._guarded(self._fetch, stmt, params, read=isinstance(stmt, Select))

    @timed_query("execute")
    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> int:
        """Run one self-contained statement that returns no rows; how many rows it touched."""
        return await self._guarded(self._execute, stmt, params, read=False)

    async def ping(self) -> None:
        """Run a trivial query; raises `DatabaseUnavailable` when the database cannot serve."""
        await self._guarded(self._fetch, _PING, {}, read=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        """Several statements as one transaction: committed when the block ends, rolled back
        (nothing written) when it raises. Nothing in it is retried: the caller decides what a
        lost connection means."""
        try:
            async with self._transaction() as executor:
                yield executor
        except Exception as exc:
            if self._connection_lost(exc):
                await self._renew_connections()
            if is_database_unavailable(exc):
                raise _unavailable(exc) from exc
            raise
        self.answered_at = time.monotonic()

    async def _guarded(
        self,
        run: Callable[[Statement, Mapping[str, Any]], Awaitable[T]],
        stmt: Statement,
        params: Mapping[str, Any],
        *,
        read: bool,
    ) -> T:
        try:
            try:
                result = await run(stmt, params)
            except Exception as exc:
                if not self._connection_lost(exc):
                    raise
                # One dead connection says the server went away (a restart, a failover, an
                # idle kill): the others kept for reuse are dead too, and none is handed out
                # again. A read is then repeated once, on a fresh connection; a write never is
                # (it may have committed before the connection died).
                await self._renew_connections()
                if not read:
                    raise
                logger.warning("connection lost during a read; retrying on a fresh connection")
                result = await run(stmt, params)
        except Exception as exc:
            if is_database_unavailable(exc):
                raise _unavailable(exc) from exc
            raise
        self.answered_at = time.monotonic()
        return result

    @abstractmethod
    async def _fetch(self, stmt: Statement, params: Mapping[str, Any]) -> Sequence[Row]: ...

    @abstractmethod
    async def _execute(self, stmt: Statement, params: Mapping[str, Any]) -> int: ...

    @abstractmethod
    def _transaction(self) -> AbstractAsyncContextManager[Executor]: ...

    @abstractmethod
    def _connection_lost(self, exc: Exception) -> bool:
        """Whether `exc` says the connection itself failed (not the statement)."""

    @abstractmethod
    async def _renew_connections(self) -> None:
        """Replace every connection kept for reuse: the ones idle now are closed, the ones in
        use are closed when released, and later statements get new ones."""

    @abstractmethod
    def pool_usage(self) -> list[PoolUsage]:
        """The pool as it is now, for the metrics."""

    @abstractmethod
    async def dispose(self) -> None:
        """Close every connection."""


def _unavailable(exc: Exception) -> DatabaseUnavailable:
    logger.warning("database unavailable: %s", type(exc).__name__)
    return DatabaseUnavailable()


# Purges delete a batch at a time: each statement stays short (well within the statement
# timeout, its locks held briefly) however large the backlog.
PURGE_BATCH = 5000


async def delete_in_batches(
    db: Executor, stmt: Delete, params: Mapping[str, Any], batch: int = PURGE_BATCH
) -> int:
    """Run a DELETE of at most `batch` rows (its `batch` parameter) until one deletes fewer;
    how many rows it deleted in all."""
    total = 0
    while True:
        deleted = await db.execute(stmt, {**params, "batch": batch})
        total += deleted
        if deleted < batch:
            return total
