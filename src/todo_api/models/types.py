"""Column types shared by the table models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
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
