"""Listing a user's tasks: filters, a total order, and keyset pages that never use OFFSET.

Each page is one `SELECT ... WHERE user_id = :owner AND <filters> AND (key, id) > (:key, :id)
ORDER BY key, id LIMIT n + 1`, read from the index of that order, so a page deep in a listing
of 200,000 tasks costs what the first page does. The extra row says whether a next page exists.

Statements are built once per *shape* (which filters are present, the order, whether a cursor
is given) and cached, so every request with the same shape reuses one compiled statement.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    func,
    not_,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean

from todo_api.db.database import Database
from todo_api.db.sqlite import FOLD as SQLITE_FOLD
from todo_api.models.task import PRIORITY_NAMES, PRIORITY_RANKS
from todo_api.models.types import TagList, UTCDateTime, due_sort_key
from todo_api.schemas.listing import TaskListQuery
from todo_api.schemas.task import tag_key
from todo_api.services import cursors
from todo_api.services.tasks import COLUMNS, LIVE, OWNER, TOMBSTONE, TaskRow, tasks

# A sync listing (`include_deleted`) also says which tasks are tombstones, and since when.
SYNC_COLUMNS = (*COLUMNS, tasks.c.deleted_at)


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
    return f"({SQLITE_FOLD}({column}) LIKE {SQLITE_FOLD}({pattern}) ESCAPE '\\')"


def like_pattern(text: str) -> str:
    """`%text%`, with LIKE's own wildcards in `text` matched literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class Order:
    field: str
    ascending: bool

    @classmethod
    def parse(cls, sort: str) -> Order:
        return cls(sort.removeprefix("-"), not sort.startswith("-"))

    def key(self) -> ColumnElement[Any]:
        if self.field == "due_at":
            return due_sort_key(tasks.c.due_at, ascending=self.ascending)
        column: ColumnElement[Any] = tasks.c[self.field]
        return column

    def key_param(self) -> ColumnElement[Any]:
        """The cursor's key, compared as the sort key is (a missing due date included)."""
        if self.field == "due_at":
            return due_sort_key(
                bindparam("after_key", type_=UTCDateTime()), ascending=self.ascending
            )
        return bindparam("after_key", type_=tasks.c[self.field].type)

    def row_key(self, row: TaskRow) -> Any:
        """The sort key of a returned row, as the statement compares it."""
        if self.field == "priority":
            return PRIORITY_RANKS[row["priority"]]
        return row[self.field]


@dataclass(frozen=True)
class _Shape:
    order: Order
    # Which filters are present (their values are bound parameters), and for `overdue` which
    # way it filters.
    completed: bool
    priority: bool
    tags: bool
    search: bool
    due_before: bool
    due_after: bool
    overdue: bool | None
    since: bool
    include_deleted: bool
    after: bool


_OVERDUE = and_(tasks.c.due_at < bindparam("now", type_=UTCDateTime()), not_(tasks.c.completed))
_NOT_OVERDUE = or_(
    tasks.c.due_at.is_(None),
    tasks.c.due_at >= bindparam("now", type_=UTCDateTime()),
    tasks.c.completed,
)
# With repeats, one parameter per priority expresses any set of them, so the set is not part
# of the shape.
_PRIORITY_SLOTS = len(PRIORITY_RANKS)


def _filters(shape: _Shape) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [OWNER]
    if shape.since:
        where.append(tasks.c.updated_at > bindparam("updated_since", type_=UTCDateTime()))
    wanted = _wanted(shape)
    if not shape.include_deleted:
        where.extend([LIVE, *wanted])
    elif wanted:
        # Tombstones have none of the fields the filters look at: they are listed regardless.
        where.append(or_(tasks.c.deleted_at.is_not(None), and_(*wanted)))
    return where


def _wanted(shape: _Shape) -> list[ColumnElement[bool]]:
    """The conditions of the filters present (every one must hold)."""
    wanted: list[ColumnElement[bool]] = []
    if shape.completed:
        wanted.append(tasks.c.completed == bindparam("completed"))
    if shape.priority:
        slots: list[BindParameter[int]] = [
            bindparam(f"priority_{i}") for i in range(_PRIORITY_SLOTS)
        ]
        wanted.append(tasks.c.priority.in_(slots))
    if shape.tags:
        wanted.append(has_all_tags(tasks.c.tag_keys, bindparam("tags", type_=TagList())))
    if shape.search:
        pattern: BindParameter[str] = bindparam("search")
        wanted.append(
            or_(contains_text(tasks.c.title, pattern), contains_text(tasks.c.description, pattern))
        )
    if shape.due_before:
        wanted.append(tasks.c.due_at < bindparam("due_before", type_=UTCDateTime()))
    if shape.due_after:
        wanted.append(tasks.c.due_at >= bindparam("due_after", type_=UTCDateTime()))
    if shape.overdue is not None:
        wanted.append(_OVERDUE if shape.overdue else _NOT_OVERDUE)
    return wanted


# Shapes are bounded (10 orders x the presence of 8 filters), and one is a few tens of KB with
# its compiled form: the most recent ones are kept.
@functools.lru_cache(maxsize=512)
def _list_statement(shape: _Shape) -> Select[Any]:
    order = shape.order
    key = order.key()
    where = _filters(shape)
    if shape.after:
        position = tuple_(key, tasks.c.id)
        after = tuple_(order.key_param(), bindparam("after_id", type_=tasks.c.id.type))
        where.append(position > after if order.ascending else position < after)
    ordering = (key, tasks.c.id) if order.ascending else (key.desc(), tasks.c.id.desc())
    columns = SYNC_COLUMNS if shape.include_deleted else COLUMNS
    return select(*columns).where(*where).order_by(*ordering).limit(bindparam("limit"))


@dataclass(frozen=True)
class Page:
    rows: Sequence[TaskRow]
    next_cursor: str | None


def listing_fingerprint(user_id: str, query: TaskListQuery) -> str:
    """What a cursor is only valid with: its user, every filter and the order (not the page
    size)."""
    return cursors.fingerprint(
        {
            "user_id": user_id,
            "completed": query.completed,
            "priority": sorted(set(query.priority)),
            "tag": sorted({tag_key(tag) for tag in query.tag}),
            "q": query.q,
            "due_before": query.due_before,
            "due_after": query.due_after,
            "overdue": query.overdue,
            "updated_since": query.updated_since,
            "include_deleted": query.include_deleted,
            "sort": sort_of(query),
        }
    )


def sort_of(query: TaskListQuery) -> str:
    """The order asked for, or the default: oldest change first when listing changes
    (`updated_since` or `include_deleted`), else newest first."""
    changes = query.updated_since is not None or query.include_deleted
    if changes and "sort" not in query.model_fields_set:
        return "updated_at"
    return query.sort


@dataclass(frozen=True)
class ListPlan:
    """The one statement of a page and its parameters."""

    statement: Select[Any]
    params: dict[str, Any]
    order: Order
    # The instant `overdue` is judged at: the first page's, carried from page to page so a
    # task passing its due time while a client pages cannot be skipped or shown twice.
    now: datetime | None


def plan_list(*, user_id: str, query: TaskListQuery) -> ListPlan:
    """How to read one page (one row more than asked, which says whether another follows).
    A cursor that does not belong to this listing is refused here, before any query."""
    order = Order.parse(sort_of(query))
    params: dict[str, Any] = {"owner": user_id, "limit": query.limit + 1}
    now = None
    if query.cursor is not None:
        position = cursors.decode(
            query.cursor, order=order.field, fingerprint=listing_fingerprint(user_id, query)
        )
        params["after_key"], params["after_id"] = position.key, position.task_id
        now = position.now
    if query.overdue is not None:
        now = now or datetime.now(UTC)
        params["now"] = now
    if query.completed is not None:
        params["completed"] = query.completed
    priorities = sorted({PRIORITY_RANKS[name] for name in query.priority})
    for i in range(_PRIORITY_SLOTS):
        if priorities:
            params[f"priority_{i}"] = priorities[min(i, len(priorities) - 1)]
    if query.tag:
        params["tags"] = sorted({tag_key(tag) for tag in query.tag})
    if query.q is not None:
        params["search"] = like_pattern(query.q)
    if query.due_before is not None:
        params["due_before"] = query.due_before
    if query.due_after is not None:
        params["due_after"] = query.due_after
    if query.updated_since is not None:
        params["updated_since"] = query.updated_since
    shape = _Shape(
        order=order,
        completed=query.completed is not None,
        priority=bool(priorities),
        tags=bool(query.tag),
        search=query.q is not None,
        due_before=query.due_before is not None,
        due_after=query.due_after is not None,
        overdue=query.overdue,
        since=query.updated_since is not None,
        include_deleted=query.include_deleted,
        after=query.cursor is not None,
    )
    return ListPlan(_list_statement(shape), params, order, now)


async def list_tasks(db: Database, *, user_id: str, query: TaskListQuery) -> Page:
    """One page of the user's tasks matching `query`, and the cursor of the next, if any."""
    plan = plan_list(user_id=user_id, query=query)
    rows = await db.fetch(plan.statement, plan.params)
    if len(rows) <= query.limit:
        return Page(rows=rows, next_cursor=None)
    rows = rows[: query.limit]
    return Page(
        rows=rows, next_cursor=cursor_after(rows[-1], user_id=user_id, query=query, plan=plan)
    )


def cursor_after(row: TaskRow, *, user_id: str, query: TaskListQuery, plan: ListPlan) -> str:
    """The cursor of the page that follows `row` in this listing."""
    return cursors.encode(
        cursors.Position(plan.order.row_key(row), row["id"], plan.now),
        order=plan.order.field,
        fingerprint=listing_fingerprint(user_id, query),
    )


_COUNT = func.count()
_COUNTS: list[ColumnElement[Any]] = [
    _COUNT.label("total"),
    _COUNT.filter(tasks.c.completed).label("completed"),
    _COUNT.filter(_OVERDUE).label("overdue"),
    *(
        _COUNT.filter(tasks.c.priority == rank).label(name)
        for rank, name in sorted(PRIORITY_NAMES.items())
    ),
]
_STATS: Select[Any] = select(*_COUNTS).where(OWNER, LIVE)


async def task_stats(db: Database, *, user_id: str) -> dict[str, Any]:
    """Counts of the user's tasks: in all, done, open, overdue, and by priority (one query)."""
    [row] = await db.fetch(_STATS, {"owner": user_id, "now": datetime.now(UTC)})
    return {
        "total": row["total"],
        "completed": row["completed"],
        "pending": row["total"] - row["completed"],
        "overdue": row["overdue"],
        "by_priority": {name: row[name] for name in PRIORITY_RANKS},
    }


# The ids come back to be counted: SQLite reports no row count for a statement opening with WITH.
_CLEAR_COMPLETED: ReturningUpdate[Any] = (
    update(tasks).where(OWNER, LIVE, tasks.c.completed).values(**TOMBSTONE).returning(tasks.c.id)
)


async def clear_completed(db: Database, *, user_id: str) -> int:
    """Delete the user's completed tasks in one statement (each becomes a tombstone, all at
    one instant); how many there were."""
    cleared = await db.fetch(_CLEAR_COMPLETED, {"owner": user_id, "now": datetime.now(UTC)})
    return len(cleared)
