"""Column types shared by the table models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp: `timestamptz` on PostgreSQL, UTC text on SQLite.

    SQLite has no time zone type and hands back naive values; this type stores UTC and always
    returns aware UTC datetimes, so nothing downstream ever sees a naive timestamp.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a timezone-aware column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            naive: datetime = value
            return naive.replace(tzinfo=UTC)
        aware: datetime = value.astimezone(UTC)
        return aware


class next_timestamp(FunctionElement[datetime]):
    """The database's current time, but always after `previous`: the new `updated_at` of a row.

    Evaluated by the database when the row is written (after any wait for its lock), so
    concurrent writers can never move a row's timestamp backwards.
    """

    type = UTCDateTime()
    inherit_cache = True
    name = "next_timestamp"


SQLITE_NEXT_TIMESTAMP = "todo_next_timestamp"


@compiles(next_timestamp)
def _next_timestamp_postgresql(element: next_timestamp, compiler: SQLCompiler, **kw: Any) -> str:
    previous = compiler.process(element.clauses, **kw)
    return f"GREATEST(clock_timestamp(), {previous} + INTERVAL '1 microsecond')"


@compiles(next_timestamp, "sqlite")
def _next_timestamp_sqlite(element: next_timestamp, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_NEXT_TIMESTAMP}({compiler.process(element.clauses, **kw)})"


def sqlite_next_timestamp(previous: str | None) -> str:
    """`next_timestamp` for SQLite, registered on each connection; timestamps are stored as
    UTC text in SQLAlchemy's format, which sorts like the instants it names."""
    now = datetime.now(UTC).replace(tzinfo=None)
    if previous:
        floor = datetime.fromisoformat(previous) + timedelta(microseconds=1)
        now = max(now, floor)
    return now.isoformat(sep=" ", timespec="microseconds")
