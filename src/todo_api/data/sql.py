"""SQL functions the statements use that neither backend spells the same way, compiled for each:
the instant of a change, tag containment and case-insensitive search."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean

from todo_api.db import sqlite
from todo_api.models.types import UTCDateTime


class change_instant(FunctionElement[datetime]):
    """`change_instant(latest, owner, now)`: the instant of a change the owner makes now, after
    every earlier change of theirs, in the order the changes commit.

    That order is what incremental sync relies on: a client that has seen a change at instant T
    must be able to trust that no change at or before T is still to commit. So an instant is
    taken under the same lock the change commits under:

    * PostgreSQL: `todo_change_instant(owner, now)` (a function of migration 0005) advances the
      owner's row of `user_clocks` to `now`, or one microsecond past its value if that is not
      earlier, holding that row's lock until the change commits; a concurrent change of the
      same owner waits for it and then takes a later instant.
    * SQLite writes one statement at a time, each under the database's write lock, so the
      instant is simply after `latest`: the owner's latest `updated_at` as the statement reads
      it (a subquery the caller passes).

    Use it once per statement, from a CTE, so every column set from it gets the same instant.
    """

    type = UTCDateTime()
    inherit_cache = True
    name = "change_instant"


POSTGRES_CHANGE_INSTANT = "todo_change_instant"


@compiles(change_instant)
def _change_instant_postgresql(element: change_instant, compiler: SQLCompiler, **kw: Any) -> str:
    _latest, owner, now = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"{POSTGRES_CHANGE_INSTANT}({owner}, {now})"


@compiles(change_instant, "sqlite")
def _change_instant_sqlite(element: change_instant, compiler: SQLCompiler, **kw: Any) -> str:
    latest, _owner, now = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"{sqlite.NEXT_TIMESTAMP}({latest}, {now})"


class has_all_tags(FunctionElement[bool]):
    """Whether a list of tag keys holds every key of another: one bound list, whatever its
    length (`@>` on PostgreSQL; on SQLite, no wanted key is missing from the row's JSON)."""

    type = Boolean()
    inherit_cache = True
    name = "has_all_tags"


@compiles(has_all_tags)
def _has_all_tags_postgresql(element: has_all_tags, compiler: SQLCompiler, **kw: Any) -> str:
    column, wanted = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({column} @> {wanted})"


@compiles(has_all_tags, "sqlite")
def _has_all_tags_sqlite(element: has_all_tags, compiler: SQLCompiler, **kw: Any) -> str:
    column, wanted = (compiler.process(clause, **kw) for clause in element.clauses)
    # Both parts are compiled SQL (a column and a bound parameter), never client text.
    return (
        f"NOT EXISTS (SELECT 1 FROM json_each({wanted}) AS wanted "  # noqa: S608
        f"WHERE wanted.value NOT IN (SELECT value FROM json_each({column})))"
    )


class contains_text(FunctionElement[bool]):
    """Case-insensitive `LIKE`: `ILIKE` on PostgreSQL (served by a trigram index where pg_trgm
    exists); on SQLite, whose `LIKE` folds only ASCII, both sides are case-folded first."""

    type = Boolean()
    inherit_cache = True
    name = "contains_text"


@compiles(contains_text)
def _contains_text_postgresql(element: contains_text, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({column} ILIKE {pattern} ESCAPE '\\')"


@compiles(contains_text, "sqlite")
def _contains_text_sqlite(element: contains_text, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({sqlite.FOLD}({column}) LIKE {sqlite.FOLD}({pattern}) ESCAPE '\\')"


def like_pattern(text: str) -> str:
    """`%text%`, with LIKE's own wildcards in `text` matched literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
