"""Which errors mean the database cannot serve right now (as opposed to a bug): these become
503 with Retry-After, never a 500."""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc

# The connection itself failed (not the statement): the server or the network went away.
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    ConnectionError,
)

_DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sa_exc.TimeoutError,  # pool exhausted for DB_POOL_TIMEOUT
    sa_exc.OperationalError,  # SQLite cannot open/lock, or a connection-level failure
    sa_exc.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.QueryCanceledError,  # statement timeout
    ConnectionError,
    TimeoutError,
)


def _unavailable_sqlstate(sqlstate: object) -> bool:
    """Connection failures (class 08), refused logins (class 28), a missing database (3D000),
    too many connections, shutdown, and cancelled queries."""
    if not isinstance(sqlstate, str):
        return False
    return sqlstate.startswith(("08", "28")) or sqlstate in {
        "3D000",
        "53300",
        "57014",
        "57P01",
        "57P02",
        "57P03",
    }


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc`, raised by a driver or SQLAlchemy, means the database cannot serve us now."""
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        # SQLAlchemy wraps the driver's exception; asyncpg's own sits behind the wrapper.
        for driver_error in (exc.orig, getattr(exc.orig, "__cause__", None)):
            if isinstance(driver_error, _DATABASE_UNAVAILABLE):
                return True
            if _unavailable_sqlstate(getattr(driver_error, "sqlstate", None)):
                return True
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError):
        return True
    if _unavailable_sqlstate(getattr(exc, "sqlstate", None)):
        return True  # a driver error raised directly (asyncpg)
    return isinstance(exc, _DATABASE_UNAVAILABLE)
