"""Task business rules. Every statement starts from the owner's live rows, so another user's
task, or a deleted one, is simply not found. Each operation is one SQL statement (writes are
`INSERT/UPDATE ... RETURNING`; a delete makes a tombstone), atomic on its own on an autocommit
connection: one round trip, nothing to roll back. Run on the database itself, a write has
committed when the function returns; run in a transaction (an Idempotency-Key's), it commits
with it."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Select,
    Update,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    not_,
    null,
    or_,
    select,
    update,
)

from todo_api.db.database import Executor
from todo_api.errors import PreconditionFailed, TaskNotFound
from todo_api.models.task import PRIORITY_NAMES, PRIORITY_RANKS, Task
from todo_api.models.types import UTCDateTime, change_instant
from todo_api.schemas.task import TaskCreate, TaskUpdate, tag_key

tasks = Task.__table__  # type: ignore[attr-defined]
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

TaskRow = Mapping[str, Any]
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


# Statements are built once, with bound parameters: per request SQLAlchemy then only looks up
# the compiled form in its cache instead of building, coercing and keying a new statement.
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
_CREATED_FIELDS = ("id", "title", "description", "completed", "priority", "due_at", "tags")
_CREATE = (
    insert(tasks)
    .values(
        **{name: bindparam(name, type_=tasks.c[name].type) for name in _CREATED_FIELDS},
        user_id=bindparam("owner"),
        tag_keys=bindparam("tag_keys", type_=tasks.c.tag_keys.type),
        completed_at=case((bindparam("completed", type_=Boolean()), NOW), else_=null()),
        created_at=NOW,
        updated_at=NOW,
        version=1,
    )
    .returning(*COLUMNS)
)
# Columns a client changes (`tag_keys` follows `tags`); `completed_at` follows `completed`.
UPDATABLE = ("title", "description", "completed", "priority", "due_at", "tags", "tag_keys")
# What deleting a task does to it: it becomes a tombstone, its text, tags and due date erased;
# sync shows only its id and the instant of its deletion.
TOMBSTONE = {
    "deleted_at": NOW,
    "updated_at": NOW,
    "version": tasks.c.version + 1,
    "title": "",
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
    return update(tasks).where(_which(conditional)).values(**TOMBSTONE).returning(tasks.c.id)


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


def _task_uuid(task_id: str) -> uuid.UUID:
    # Only the hyphenated form names a task (hex digits in either case, as UUIDs are read).
    if not _CANONICAL_UUID.fullmatch(task_id):
        raise TaskNotFound()
    return uuid.UUID(task_id)


def _task_key(user_id: str, task_id: str) -> dict[str, Any]:
    return {"owner": user_id, "task_id": _task_uuid(task_id)}


async def get_task(db: Executor, *, user_id: str, task_id: str) -> TaskRow:
    return await _one_task(db, _GET, _task_key(user_id, task_id))


async def create_task(db: Executor, *, user_id: str, data: TaskCreate) -> TaskRow:
    tags = data.tags or []
    values = {
        "id": uuid.uuid4(),
        "owner": user_id,
        "title": data.title,
        "description": data.description,
        "completed": data.completed,
        "priority": PRIORITY_RANKS[data.priority],
        "due_at": data.due_at,
        "tags": tags,
        "tag_keys": [tag_key(tag) for tag in tags],
        "now": datetime.now(UTC),
    }
    [row] = await db.fetch(_CREATE, values)
    created: TaskRow = row
    return created


async def update_task(
    db: Executor,
    *,
    user_id: str,
    task_id: str,
    changes: TaskUpdate,
    if_match: Sequence[int] | None = None,
) -> TaskRow:
    """Apply the fields the client sent; `updated_at` moves only if a value really changes.
    With `if_match`, only if the task is at one of those versions (else PreconditionFailed)."""
    values = changes.changes()
    if not values:
        row = await get_task(db, user_id=user_id, task_id=task_id)
        if if_match is not None and row["version"] not in if_match:
            raise PreconditionFailed(row["version"])
        return row
    return await _apply_changes(
        db, user_id=user_id, task_id=task_id, values=values, if_match=if_match
    )


async def set_completed(
    db: Executor,
    *,
    user_id: str,
    task_id: str,
    completed: bool | None,
    if_match: Sequence[int] | None = None,
) -> TaskRow:
    """Set `completed` to the given value, or flip it when no value is given."""
    if completed is not None:
        return await _apply_changes(
            db, user_id=user_id, task_id=task_id, values={"completed": completed}, if_match=if_match
        )
    params = _write_params(user_id, task_id, if_match)
    conditional = if_match is not None
    return await _written_task(db, _toggle_statement(conditional), params, conditional)


async def delete_task(
    db: Executor, *, user_id: str, task_id: str, if_match: Sequence[int] | None = None
) -> None:
    """Make the task a tombstone: gone from every read and write, listed only by sync."""
    params = _write_params(user_id, task_id, if_match)
    conditional = if_match is not None
    await _written_task(db, _delete_statement(conditional), params, conditional)


async def _apply_changes(
    db: Executor,
    *,
    user_id: str,
    task_id: str,
    values: Mapping[str, Any],
    if_match: Sequence[int] | None,
) -> TaskRow:
    columns = dict(values)
    if "priority" in columns:
        columns["priority"] = PRIORITY_RANKS[columns["priority"]]
    if "tags" in columns:
        columns["tag_keys"] = [tag_key(tag) for tag in columns["tags"]]
    params = _write_params(user_id, task_id, if_match)
    params.update({f"new_{name}": value for name, value in columns.items()})
    conditional = if_match is not None
    statement = _update_statement(frozenset(columns), conditional)
    return await _written_task(db, statement, params, conditional)


def _write_params(user_id: str, task_id: str, if_match: Sequence[int] | None) -> dict[str, Any]:
    params = _task_key(user_id, task_id)
    params["now"] = datetime.now(UTC)
    if if_match is not None:
        if not 1 <= len(if_match) <= MATCH_SLOTS:
            raise ValueError(f"between 1 and {MATCH_SLOTS} versions may be matched")
        for i in range(MATCH_SLOTS):
            params[f"if_version_{i}"] = if_match[min(i, len(if_match) - 1)]
    return params


async def _written_task(
    db: Executor, stmt: Update, params: dict[str, Any], conditional: bool
) -> TaskRow:
    """Run a write of one task. When it changed nothing, say why: the task is missing (404),
    or, for a conditional write, it is at another version (412, with the version it is at)."""
    rows = await db.fetch(stmt, params)
    if rows:
        row: TaskRow = rows[0]
        return row
    if conditional:
        current = await db.fetch(_CURRENT_VERSION, params)
        if current:
            raise PreconditionFailed(current[0]["version"])
    raise TaskNotFound()


async def _one_task(db: Executor, stmt: Select[Any], params: dict[str, Any]) -> TaskRow:
    """Run a statement that yields at most the one task it names; not found when it yields none."""
    rows = await db.fetch(stmt, params)
    if not rows:
        raise TaskNotFound()
    row: TaskRow = rows[0]
    return row
