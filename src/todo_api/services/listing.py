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
    Delete,
    Select,
    and_,
    bindparam,
    delete,
    func,
    not_,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean

from todo_api.core.db import Database
from todo_api.models.task import PRIORITY_NAMES, PRIORITY_RANKS
from todo_api.models.types import SQLITE_FOLD, UTCDateTime, due_sort_key
from todo_api.schemas.listing import TaskListQuery
from todo_api.schemas.task import tag_key
from todo_api.services import cursors
from todo_api.services.tasks import COLUMNS, TaskRow, tasks


class has_tag(FunctionElement[bool]):
    """Whether a tag-key list holds a key: `= ANY(...)` on PostgreSQL, `json_each` on SQLite."""

    type = Boolean()
    inherit_cache = True
    name = "has_tag"


@compiles(has_tag)
def _has_tag_postgresql(element: has_tag, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({key} = ANY({column}))"


@compiles(has_tag, "sqlite")
def _has_tag_sqlite(element: has_tag, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(clause, **kw) for clause in element.clauses)
    # Both parts are compiled SQL (a column and a bound parameter), never client text.
    return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {key})"  # noqa: S608


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
    completed: bool
    priority: bool
    tags: int
    search: bool
    due_before: bool
    due_after: bool
    overdue: bool | None
    after: bool


_OWNER = tasks.c.user_id == bindparam("owner")
_OVERDUE = and_(tasks.c.due_at < bindparam("now", type_=UTCDateTime()), not_(tasks.c.completed))
_NOT_OVERDUE = or_(
    tasks.c.due_at.is_(None),
    tasks.c.due_at >= bindparam("now", type_=UTCDateTime()),
    tasks.c.completed,
)
# With repeats, three parameters express any set of priorities, so the set is not in the shape.
_PRIORITY_SLOTS = 3


def _filters(shape: _Shape) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [_OWNER]
    if shape.completed:
        where.append(tasks.c.completed == bindparam("completed"))
    if shape.priority:
        slots: list[BindParameter[int]] = [
            bindparam(f"priority_{i}") for i in range(_PRIORITY_SLOTS)
        ]
        where.append(tasks.c.priority.in_(slots))
    for i in range(shape.tags):
        where.append(has_tag(tasks.c.tag_keys, bindparam(f"tag_{i}")))
    if shape.search:
        pattern: BindParameter[str] = bindparam("search")
        where.append(
            or_(contains_text(tasks.c.title, pattern), contains_text(tasks.c.description, pattern))
        )
    if shape.due_before:
        where.append(tasks.c.due_at < bindparam("due_before", type_=UTCDateTime()))
    if shape.due_after:
        where.append(tasks.c.due_at >= bindparam("due_after", type_=UTCDateTime()))
    if shape.overdue is not None:
        where.append(_OVERDUE if shape.overdue else _NOT_OVERDUE)
    return where


@functools.lru_cache(maxsize=1024)
def _list_statement(shape: _Shape) -> Select[Any]:
    order = shape.order
    key = order.key()
    where = _filters(shape)
    if shape.after:
        position = tuple_(key, tasks.c.id)
        after = tuple_(order.key_param(), bindparam("after_id", type_=tasks.c.id.type))
        where.append(position > after if order.ascending else position < after)
    ordering = (key, tasks.c.id) if order.ascending else (key.desc(), tasks.c.id.desc())
    return select(*COLUMNS).where(*where).order_by(*ordering).limit(bindparam("limit"))


@dataclass(frozen=True)
class Page:
    rows: Sequence[TaskRow]
    next_cursor: str | None


def _fingerprint_of(query: TaskListQuery) -> dict[str, Any]:
    """What a cursor is only valid with: every filter and the order (not the page size)."""
    return {
        "completed": query.completed,
        "priority": sorted(set(query.priority)),
        "tag": sorted({tag_key(tag) for tag in query.tag}),
        "q": query.q,
        "due_before": query.due_before,
        "due_after": query.due_after,
        "overdue": query.overdue,
        "sort": query.sort,
    }


@dataclass(frozen=True)
class ListPlan:
    """The one statement of a page, its parameters, and what the page's cursor is made of."""

    statement: Select[Any]
    params: dict[str, Any]
    order: Order
    fingerprint: str


def plan_list(*, user_id: str, query: TaskListQuery) -> ListPlan:
    """How to read one page (one row more than asked, which says whether another follows).
    A cursor that does not belong to this listing is refused here, before any query."""
    order = Order.parse(query.sort)
    fingerprint = cursors.fingerprint(_fingerprint_of(query))
    params: dict[str, Any] = {"owner": user_id, "limit": query.limit + 1}
    after = None
    if query.cursor is not None:
        after = cursors.decode(query.cursor, order=order.field, fingerprint=fingerprint)
        params["after_key"], params["after_id"] = after
    if query.completed is not None:
        params["completed"] = query.completed
    priorities = sorted({PRIORITY_RANKS[name] for name in query.priority})
    for i in range(_PRIORITY_SLOTS):
        if priorities:
            params[f"priority_{i}"] = priorities[min(i, len(priorities) - 1)]
    keys = sorted({tag_key(tag) for tag in query.tag})
    for i, key in enumerate(keys):
        params[f"tag_{i}"] = key
    if query.q is not None:
        params["search"] = like_pattern(query.q)
    if query.due_before is not None:
        params["due_before"] = query.due_before
    if query.due_after is not None:
        params["due_after"] = query.due_after
    if query.overdue is not None:
        params["now"] = datetime.now(UTC)
    shape = _Shape(
        order=order,
        completed=query.completed is not None,
        priority=bool(priorities),
        tags=len(keys),
        search=query.q is not None,
        due_before=query.due_before is not None,
        due_after=query.due_after is not None,
        overdue=query.overdue,
        after=after is not None,
    )
    return ListPlan(_list_statement(shape), params, order, fingerprint)


async def list_tasks(db: Database, *, user_id: str, query: TaskListQuery) -> Page:
    """One page of the user's tasks matching `query`, and the cursor of the next, if any."""
    plan = plan_list(user_id=user_id, query=query)
    rows = await db.fetch(plan.statement, plan.params)
    if len(rows) <= query.limit:
        return Page(rows=rows, next_cursor=None)
    rows = rows[: query.limit]
    last = rows[-1]
    next_cursor = cursors.encode(
        order=plan.order.field,
        fingerprint=plan.fingerprint,
        key=plan.order.row_key(last),
        task_id=last["id"],
    )
    return Page(rows=rows, next_cursor=next_cursor)


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
_STATS: Select[Any] = select(*_COUNTS).where(_OWNER)


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


_CLEAR_COMPLETED: Delete = delete(tasks).where(_OWNER, tasks.c.completed)


async def clear_completed(db: Database, *, user_id: str) -> int:
    """Delete the user's completed tasks in one statement; how many there were."""
    return await db.execute(_CLEAR_COMPLETED, {"owner": user_id})
