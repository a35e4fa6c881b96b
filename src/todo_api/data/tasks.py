"""The `tasks` table's statements: built once (or once per shape), bound per call.

Every statement starts from the owner's rows, and all but sync's and the purge's from their live
ones, so another user's task, or a deleted one, is simply not found. Each operation is one
statement (writes are `INSERT/UPDATE ... RETURNING`; a delete makes a tombstone), atomic on its
own: one round trip. Run on the database itself, a write has committed when the function
returns; run in a transaction (an Idempotency-Key's), it commits with it.

A listing page is one `SELECT ... WHERE user_id = :owner AND <filters> AND (key, id) > (:key,
:id) ORDER BY key, id LIMIT n`, read from the index of that order, so a page deep in a listing
of 200,000 tasks costs what the first page does.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Delete,
    Select,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    not_,
    null,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.elements import BindParameter

from todo_api.data.sql import change_instant, contains_text, has_all_tags, like_pattern
from todo_api.db.database import PURGE_BATCH, Executor, delete_in_batches
from todo_api.models.task import PRIORITY_NAMES, PRIORITY_RANKS, tasks
from todo_api.models.types import TagList, UTCDateTime, due_sort_key

TaskRow = Mapping[str, Any]

# What a task looks like to clients: the priority by name, the tags as given (not their keys).
COLUMNS = (
    tasks.c.id,
    tasks.c.user_id,
    tasks.c.title,
    tasks.c.description,
    tasks.c.completed,
    # Literals, not parameters: the same SQL text on every call, nothing to bind.
    case(
        *(
            (tasks.c.priority == literal_column(str(rank)), literal_column(f"'{name}'"))
            for rank, name in PRIORITY_NAMES.items()
        )
    ).label("priority"),
    tasks.c.due_at,
    tasks.c.tags,
    tasks.c.completed_at,
    tasks.c.created_at,
    tasks.c.updated_at,
    tasks.c.version,
)
# A sync listing (`include_deleted`) also says which tasks are tombstones, and since when.
SYNC_COLUMNS = (*COLUMNS, tasks.c.deleted_at)

OWNER = tasks.c.user_id == bindparam("owner")
# A deleted task is a tombstone: no read or write but incremental sync sees it.
LIVE = tasks.c.deleted_at.is_(None)
_THE_TASK = and_(OWNER, tasks.c.id == bindparam("task_id"), LIVE)
_GET = select(*COLUMNS).where(_THE_TASK)
# The instant of a change: after every earlier change of the owner's, in commit order (see
# `change_instant`), computed once per statement in a CTE, so every column set from it gets the
# same instant. Read only where a change is really made: a statement that changes nothing
# takes no instant.
_LATEST = tasks.alias("latest")
_INSTANT = select(
    change_instant(
        select(func.max(_LATEST.c.updated_at))
        .where(_LATEST.c.user_id == bindparam("owner"))
        .scalar_subquery(),
        bindparam("owner"),
        bindparam("now", type_=UTCDateTime()),
    ).label("at")
).cte("instant")
NOW = select(_INSTANT.c.at).scalar_subquery()
# Columns a new task is given (`tag_keys` follows `tags`).
CREATED = ("id", "title", "description", "completed", "priority", "due_at", "tags", "tag_keys")
_CREATE = (
    insert(tasks)
    .values(
        **{name: bindparam(name, type_=tasks.c[name].type) for name in CREATED},
        user_id=bindparam("owner"),
        completed_at=case((bindparam("completed", type_=Boolean()), NOW), else_=null()),
        created_at=NOW,
        updated_at=NOW,
        version=1,
    )
    .returning(*COLUMNS)
)
# Columns a client changes (`tag_keys` follows `tags`); `completed_at` follows `completed`.
UPDATABLE = ("title", "description", "completed", "priority", "due_at", "tags", "tag_keys")
# A tombstone's title: empty, which no live task's title is. It is still a sort key: in a
# listing by title with tombstones, they come first (last with `-title`).
ERASED_TITLE = ""
# What deleting a task does to it: it becomes a tombstone, its text, tags and due date erased;
# sync shows only its id and the instant of its deletion.
_TOMBSTONE = {
    "deleted_at": NOW,
    "updated_at": NOW,
    "version": tasks.c.version + 1,
    "title": ERASED_TITLE,
    "description": None,
    "due_at": None,
    "tags": [],
    "tag_keys": [],
}
# A conditional write (If-Match) names the versions it may change: up to this many, repeated to
# fill the slots, so any set is one statement.
MATCH_SLOTS = 4
_VERSION_MATCHES = tasks.c.version.in_([bindparam(f"if_version_{i}") for i in range(MATCH_SLOTS)])
_CURRENT_VERSION = select(tasks.c.version).where(_THE_TASK)


def _which(conditional: bool) -> ColumnElement[bool]:
    """The task a write changes: the owner's, and with `If-Match`, only at a matching version.
    Check and write are one statement, so no other write can slip in between."""
    return and_(_THE_TASK, _VERSION_MATCHES) if conditional else _THE_TASK


@functools.cache
def _toggle_statement(conditional: bool) -> Update:
    return (
        update(tasks)
        .where(_which(conditional))
        .values(
            completed=not_(tasks.c.completed),
            completed_at=case((tasks.c.completed, null()), else_=NOW),
            updated_at=NOW,
            version=tasks.c.version + 1,
        )
        .returning(*COLUMNS)
    )


@functools.cache
def _delete_statement(conditional: bool) -> Update:
    return update(tasks).where(_which(conditional)).values(**_TOMBSTONE).returning(tasks.c.id)


@functools.cache
def _update_statement(fields: frozenset[str], conditional: bool) -> Update:
    """`UPDATE` of these columns; `updated_at` and `version` move only if one of them really
    changes, and `completed_at` only when the task really becomes completed or reopened."""
    new = {name: bindparam(f"new_{name}", type_=tasks.c[name].type) for name in UPDATABLE}
    changed = or_(*(tasks.c[name].is_distinct_from(new[name]) for name in sorted(fields)))
    values: dict[str, Any] = {name: new[name] for name in sorted(fields)}
    if "completed" in fields:
        values["completed_at"] = case(
            (not_(new["completed"]), null()),
            (tasks.c.completed, tasks.c.completed_at),
            else_=NOW,
        )
    return (
        update(tasks)
        .where(_which(conditional))
        .values(
            **values,
            updated_at=case((changed, NOW), else_=tasks.c.updated_at),
            version=case((changed, tasks.c.version + 1), else_=tasks.c.version),
        )
        .returning(*COLUMNS)
    )


def _write_params(
    owner: str, task_id: uuid.UUID, versions: Sequence[int] | None, now: datetime
) -> dict[str, Any]:
    params: dict[str, Any] = {"owner": owner, "task_id": task_id, "now": now}
    if versions is not None:
        if not 1 <= len(versions) <= MATCH_SLOTS:
            raise ValueError(f"between 1 and {MATCH_SLOTS} versions may be matched")
        for i in range(MATCH_SLOTS):
            params[f"if_version_{i}"] = versions[min(i, len(versions) - 1)]
    return params


async def _first(db: Executor, stmt: Any, params: Mapping[str, Any]) -> TaskRow | None:
    rows = await db.fetch(stmt, params)
    return rows[0] if rows else None


async def fetch_task(db: Executor, *, owner: str, task_id: uuid.UUID) -> TaskRow | None:
    """The owner's live task, or None."""
    return await _first(db, _GET, {"owner": owner, "task_id": task_id})


async def current_version(db: Executor, *, owner: str, task_id: uuid.UUID) -> int | None:
    """The version the owner's live task is at, or None when there is no such task."""
    row = await _first(db, _CURRENT_VERSION, {"owner": owner, "task_id": task_id})
    return None if row is None else int(row["version"])


async def insert_task(
    db: Executor, *, owner: str, values: Mapping[str, Any], now: datetime
) -> TaskRow:
    """Create a task with `values` (every column of `CREATED`), stamped with the owner's next
    change instant (`now`, or just after their latest change)."""
    [row] = await db.fetch(_CREATE, {**values, "owner": owner, "now": now})
    created: TaskRow = row
    return created


async def update_task(
    db: Executor,
    *,
    owner: str,
    task_id: uuid.UUID,
    columns: Mapping[str, Any],
    versions: Sequence[int] | None,
    now: datetime,
) -> TaskRow | None:
    """Set `columns` (of `UPDATABLE`) of the owner's task, only at one of `versions` when given;
    the task as it now is, or None when no task was written."""
    params = _write_params(owner, task_id, versions, now)
    params.update({f"new_{name}": value for name, value in columns.items()})
    statement = _update_statement(frozenset(columns), versions is not None)
    return await _first(db, statement, params)


async def toggle_completed(
    db: Executor, *, owner: str, task_id: uuid.UUID, versions: Sequence[int] | None, now: datetime
) -> TaskRow | None:
    """Flip `completed` of the owner's task (as `update_task`)."""
    params = _write_params(owner, task_id, versions, now)
    return await _first(db, _toggle_statement(versions is not None), params)


async def tombstone_task(
    db: Executor, *, owner: str, task_id: uuid.UUID, versions: Sequence[int] | None, now: datetime
) -> bool:
    """Make the owner's task a tombstone (as `update_task`); whether there was one to delete."""
    params = _write_params(owner, task_id, versions, now)
    return await _first(db, _delete_statement(versions is not None), params) is not None


# The ids come back to be counted: SQLite reports no row count for a statement opening with WITH.
_CLEAR_COMPLETED: ReturningUpdate[Any] = (
    update(tasks).where(OWNER, LIVE, tasks.c.completed).values(**_TOMBSTONE).returning(tasks.c.id)
)


async def tombstone_completed(db: Executor, *, owner: str, now: datetime) -> int:
    """Make every completed task of the owner a tombstone, all at one instant; how many."""
    return len(await db.fetch(_CLEAR_COMPLETED, {"owner": owner, "now": now}))


_OLD_TOMBSTONES: Delete = delete(tasks).where(
    tasks.c.id.in_(
        select(tasks.c.id)
        .where(
            tasks.c.deleted_at.is_not(None),
            tasks.c.deleted_at < bindparam("before", type_=UTCDateTime()),
        )
        .limit(bindparam("batch"))
    )
)


async def delete_tombstones(db: Executor, *, before: datetime, batch: int = PURGE_BATCH) -> int:
    """Delete the tombstones of tasks deleted before `before`, a batch at a time; how many."""
    return await delete_in_batches(db, _OLD_TOMBSTONES, {"before": before}, batch)


_OVERDUE = and_(tasks.c.due_at < bindparam("now", type_=UTCDateTime()), not_(tasks.c.completed))
_NOT_OVERDUE = or_(
    tasks.c.due_at.is_(None),
    tasks.c.due_at >= bindparam("now", type_=UTCDateTime()),
    tasks.c.completed,
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


async def count_tasks(db: Executor, *, owner: str, now: datetime) -> TaskRow:
    """Counts of the owner's live tasks (one query): `total`, `completed`, `overdue` at `now`,
    and one per priority name."""
    [row] = await db.fetch(_STATS, {"owner": owner, "now": now})
    counts: TaskRow = row
    return counts


# Orders a listing may take: a column, ascending or descending, with the id breaking ties.
ORDERS = frozenset({"created_at", "updated_at", "priority", "title", "due_at"})


@dataclass(frozen=True)
class TaskFilter:
    """One page of a listing, in the database's terms: whose tasks, which of them, in what
    order, from which position, and how many rows to read."""

    owner: str
    order: str
    ascending: bool
    limit: int
    completed: bool | None = None
    priorities: Sequence[int] = ()
    tag_keys: Sequence[str] = ()
    search: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    overdue: bool | None = None
    # The instant `overdue` is judged at.
    now: datetime | None = None
    updated_since: datetime | None = None
    # Tombstones too (sync).
    include_deleted: bool = False
    # The sort key and id of the row the page starts after.
    after: tuple[Any, uuid.UUID] | None = None


def position_key(order: str, row: TaskRow) -> Any:
    """A returned row's sort key, as the listing statement compares it."""
    if order == "priority":
        return PRIORITY_RANKS[row["priority"]]
    return row[order]


def _sort_key(order: str, ascending: bool) -> ColumnElement[Any]:
    if order == "due_at":
        return due_sort_key(tasks.c.due_at, ascending=ascending)
    column: ColumnElement[Any] = tasks.c[order]
    return column


def _sort_key_param(order: str, ascending: bool) -> ColumnElement[Any]:
    """The cursor's key, compared as the sort key is (a missing due date included)."""
    if order == "due_at":
        return due_sort_key(bindparam("after_key", type_=UTCDateTime()), ascending=ascending)
    return bindparam("after_key", type_=tasks.c[order].type)


@dataclass(frozen=True)
class _Shape:
    """What a listing statement depends on: the order, and which filters are present (their
    values are bound parameters), for `overdue` which way it filters."""

    order: str
    ascending: bool
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
    key = _sort_key(shape.order, shape.ascending)
    where = _filters(shape)
    if shape.after:
        position = tuple_(key, tasks.c.id)
        after = tuple_(
            _sort_key_param(shape.order, shape.ascending),
            bindparam("after_id", type_=tasks.c.id.type),
        )
        where.append(position > after if shape.ascending else position < after)
    ordering = (key, tasks.c.id) if shape.ascending else (key.desc(), tasks.c.id.desc())
    columns = SYNC_COLUMNS if shape.include_deleted else COLUMNS
    return select(*columns).where(*where).order_by(*ordering).limit(bindparam("limit"))


def listing_statement(page: TaskFilter) -> tuple[Select[Any], dict[str, Any]]:
    """The one statement that reads `page`, and its parameters."""
    if page.order not in ORDERS:
        raise ValueError(f"unknown order {page.order!r}")
    params: dict[str, Any] = {"owner": page.owner, "limit": page.limit}
    if page.after is not None:
        params["after_key"], params["after_id"] = page.after
    if page.overdue is not None:
        if page.now is None:
            raise ValueError("overdue is judged at an instant: `now` is required with it")
        params["now"] = page.now
    if page.completed is not None:
        params["completed"] = page.completed
    priorities = sorted(set(page.priorities))
    for i in range(_PRIORITY_SLOTS):
        if priorities:
            params[f"priority_{i}"] = priorities[min(i, len(priorities) - 1)]
    if page.tag_keys:
        params["tags"] = sorted(set(page.tag_keys))
    if page.search is not None:
        params["search"] = like_pattern(page.search)
    for name in ("due_before", "due_after", "updated_since"):
        if getattr(page, name) is not None:
            params[name] = getattr(page, name)
    shape = _Shape(
        order=page.order,
        ascending=page.ascending,
        completed=page.completed is not None,
        priority=bool(priorities),
        tags=bool(page.tag_keys),
        search=page.search is not None,
        due_before=page.due_before is not None,
        due_after=page.due_after is not None,
        overdue=page.overdue,
        since=page.updated_since is not None,
        include_deleted=page.include_deleted,
        after=page.after is not None,
    )
    return _list_statement(shape), params


async def list_tasks(db: Executor, page: TaskFilter) -> Sequence[TaskRow]:
    """The rows of one page (at most `page.limit`)."""
    statement, params = listing_statement(page)
    return await db.fetch(statement, params)
