"""Which errors mean the database cannot serve right now (as opposed to a bug): these become
503 with Retry-After, never a 500."""

from __future__ import annotations

import ssl

import asyncpg
from sqlalchemy import exc as sa_exc

from todo_api.errors import DatabaseUnavailable

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


def describe_failure(exc: BaseException, *, connect_timeout: float | None = None) -> str:
    """What the database (or the network) said, in one line, for a person reading a start-up
    error: the server's own message where it sent one (`database "x" does not exist`), else
    what the connection attempt met. Server messages carry no password; the caller masks the
    URL it prints beside this."""
    reason = _driver_error(exc)
    if isinstance(reason, TimeoutError):
        within = f" within {connect_timeout:g} s" if connect_timeout else ""
        return f"no answer{within} (DB_CONNECT_TIMEOUT)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused: nothing is listening there"
    if isinstance(reason, ssl.SSLError) and "PEM lib" in str(reason):
        # OpenSSL's words for a client key it could not load, before any connection.
        return (
            "cannot load the client certificate and key (sslcert, sslkey): "
            "a wrong sslpassword, or not a PEM certificate and key"
        )
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    message = " ".join(str(reason).split())
    return message or type(reason).__name__


def _driver_error(exc: BaseException) -> BaseException:
    """The error the driver raised, behind SQLAlchemy's and this service's wrappers."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
            # The adapted driver error; asyncpg's own sits behind it.
            exc = getattr(exc.orig, "__cause__", None) or exc.orig
        elif isinstance(exc, DatabaseUnavailable) and exc.__cause__ is not None:
            exc = exc.__cause__
        else:
            break
    return exc
