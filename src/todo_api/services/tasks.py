"""Task business rules. Every statement starts from the owner's rows, so another user's task is
simply not found. Each operation is one SQL statement (writes are `INSERT/UPDATE/DELETE ...
RETURNING`), atomic on its own on an autocommit connection: one round trip, nothing to roll back.
A write has committed when the function returns."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Select,
    Update,
    and_,
    bindparam,
    case,
    delete,
    insert,
    not_,
    or_,
    select,
    update,
)

from todo_api.core.db import Database
from todo_api.core.errors import TaskNotFound
from todo_api.models.task import Task
from todo_api.models.types import next_timestamp
from todo_api.schemas.task import TaskCreate, TaskUpdate

tasks = Task.__table__  # type: ignore[attr-defined]
COLUMNS = (
    tasks.c.id,
    tasks.c.user_id,
    tasks.c.title,
    tasks.c.description,
    tasks.c.completed,
    tasks.c.created_at,
    tasks.c.updated_at,
)
NEWEST_FIRST = (tasks.c.created_at.desc(), tasks.c.id.desc())
MAX_LIST_SIZE = 1000

TaskRow = Mapping[str, Any]
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


# Statements are built once, with bound parameters: per request SQLAlchemy then only looks up
# the compiled form in its cache instead of building, coercing and keying a new statement.
_OWNER = tasks.c.user_id == bindparam("owner")
_THE_TASK = and_(_OWNER, tasks.c.id == bindparam("task_id"))
_LIST = select(*COLUMNS).where(_OWNER).order_by(*NEWEST_FIRST).limit(MAX_LIST_SIZE)
_GET = select(*COLUMNS).where(_THE_TASK)
_CREATE = insert(tasks).returning(*COLUMNS)
_TOGGLE = (
    update(tasks)
    .where(_THE_TASK)
    .values(completed=not_(tasks.c.completed), updated_at=next_timestamp(tasks.c.updated_at))
    .returning(*COLUMNS)
)
_DELETE = delete(tasks).where(_THE_TASK).returning(tasks.c.id)
UPDATABLE = ("title", "description", "completed")


@functools.cache
def _update_statement(fields: frozenset[str]) -> Update:
    """`UPDATE` of these fields; `updated_at` moves only if one of them really changes."""
    new = {name: bindparam(f"new_{name}", type_=tasks.c[name].type) for name in UPDATABLE}
    changed = or_(*(tasks.c[name].is_distinct_from(new[name]) for name in sorted(fields)))
    return (
        update(tasks)
        .where(_THE_TASK)
        .values(
            **{name: new[name] for name in sorted(fields)},
            updated_at=case(
                (changed, next_timestamp(tasks.c.updated_at)), else_=tasks.c.updated_at
            ),
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


async def list_tasks(db: Database, *, user_id: str) -> Sequence[TaskRow]:
    """The user's tasks, newest first."""
    rows: Sequence[TaskRow] = await db.fetch(_LIST, {"owner": user_id})
    return rows


async def get_task(db: Database, *, user_id: str, task_id: str) -> TaskRow:
    return await _one_task(db, _GET, _task_key(user_id, task_id))


async def create_task(db: Database, *, user_id: str, data: TaskCreate) -> TaskRow:
    now = datetime.now(UTC)
    values = {
        "id": uuid.uuid4(),
        "user_id": user_id,
        "title": data.title,
        "description": data.description,
        "completed": data.completed,
        "created_at": now,
        "updated_at": now,
    }
    [row] = await db.fetch(_CREATE, values)
    created: TaskRow = row
    return created


async def update_task(db: Database, *, user_id: str, task_id: str, changes: TaskUpdate) -> TaskRow:
    """Apply the fields the client sent; `updated_at` moves only if a value really changes."""
    values = changes.changes()
    if not values:
        return await get_task(db, user_id=user_id, task_id=task_id)
    return await _apply_changes(db, user_id=user_id, task_id=task_id, values=values)


async def set_completed(
    db: Database, *, user_id: str, task_id: str, completed: bool | None
) -> TaskRow:
    """Set `completed` to the given value, or flip it when no value is given."""
    if completed is not None:
        return await _apply_changes(
            db, user_id=user_id, task_id=task_id, values={"completed": completed}
        )
    return await _one_task(db, _TOGGLE, _task_key(user_id, task_id))


async def delete_task(db: Database, *, user_id: str, task_id: str) -> None:
    if not await db.fetch(_DELETE, _task_key(user_id, task_id)):
        raise TaskNotFound()


async def _apply_changes(
    db: Database, *, user_id: str, task_id: str, values: Mapping[str, Any]
) -> TaskRow:
    params = _task_key(user_id, task_id)
    params.update({f"new_{name}": value for name, value in values.items()})
    return await _one_task(db, _update_statement(frozenset(values)), params)


async def _one_task(db: Database, stmt: Select[Any] | Update, params: dict[str, Any]) -> TaskRow:
    """Run a statement that yields at most the one task it names; not found when it yields none."""
    rows = await db.fetch(stmt, params)
    if not rows:
        raise TaskNotFound()
    row: TaskRow = rows[0]
    return row
