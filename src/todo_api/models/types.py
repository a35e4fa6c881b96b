"""Column types shared by the table models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine


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


TAG_MAX_LENGTH = 50


class TagList(TypeDecorator[list[str]]):
    """A list of strings: `varchar[]` on PostgreSQL (so `@>` can test containment), a JSON array
    on SQLite. Always a list in Python, never None. `length` bounds each item on PostgreSQL."""

    impl = JSON()
    cache_ok = True

    def __init__(self, length: int | None = None) -> None:
        super().__init__()
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(String(self.length)))
        return dialect.type_descriptor(JSON())

    def process_bind_param(self, value: list[str] | None, dialect: Dialect) -> list[str]:  # noqa: ARG002
        return list(value or ())

    def process_result_value(self, value: Any, dialect: Dialect) -> list[str]:  # noqa: ARG002
        return list(value or ())


# Sort keys that put tasks without a due date last in either direction: an ascending listing
# treats a missing date as the latest instant, a descending one as the earliest. The same
# expressions are indexed, so each order is an index scan.
_DUE_SENTINELS = {
    ("postgresql", True): "'infinity'::timestamptz",
    ("postgresql", False): "'-infinity'::timestamptz",
    ("sqlite", True): "'9999-12-31 23:59:59.999999'",
    ("sqlite", False): "'0001-01-01 00:00:00.000000'",
}


class _DueSortKey(FunctionElement[datetime]):
    """`COALESCE(due, <sentinel>)`: the due date as a sort key, missing dates last."""

    type = UTCDateTime()
    inherit_cache = True
    ascending: ClassVar[bool]


class _DueAscending(_DueSortKey):
    inherit_cache = True
    name = "due_sort_key_asc"
    ascending = True


class _DueDescending(_DueSortKey):
    inherit_cache = True
    name = "due_sort_key_desc"
    ascending = False


def due_sort_key(due: Any, *, ascending: bool) -> FunctionElement[datetime]:
    """The due date as a sort key for an ascending or a descending order (the direction is the
    construct's class, so statements cache by it with no state of their own)."""
    return _DueAscending(due) if ascending else _DueDescending(due)


@compiles(_DueAscending)
@compiles(_DueDescending)
def _due_sort_key(element: _DueSortKey, compiler: SQLCompiler, **kw: Any) -> str:
    dialect = "sqlite" if compiler.dialect.name == "sqlite" else "postgresql"
    sentinel = _DUE_SENTINELS[(dialect, element.ascending)]
    return f"COALESCE({compiler.process(element.clauses, **kw)}, {sentinel})"
