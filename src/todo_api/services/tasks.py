"""Task business rules. Every statement starts from the owner's rows, so another user's task is
simply not found. Writes are one `INSERT/UPDATE/DELETE ... RETURNING` round trip."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Delete,
    Select,
    Update,
    case,
    delete,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from todo_api.core.errors import TaskNotFound
from todo_api.models.task import Task
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

TaskRow = RowMapping


def _now() -> datetime:
    return datetime.now(UTC)


def _now_literal() -> Any:
    return literal(_now(), tasks.c.updated_at.type)


def _task_uuid(task_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(task_id)
    except ValueError:
        raise TaskNotFound() from None


def _owned_select(user_id: str) -> Select[Any]:
    return select(*COLUMNS).where(tasks.c.user_id == user_id)


def _owned_update(user_id: str, task_id: str) -> Update:
    return update(tasks).where(tasks.c.user_id == user_id, tasks.c.id == _task_uuid(task_id))


def _owned_delete(user_id: str, task_id: str) -> Delete:
    return delete(tasks).where(tasks.c.user_id == user_id, tasks.c.id == _task_uuid(task_id))


async def list_tasks(session: AsyncSession, *, user_id: str) -> Sequence[TaskRow]:
    """The user's tasks, newest first."""
    stmt = _owned_select(user_id).order_by(*NEWEST_FIRST).limit(MAX_LIST_SIZE)
    rows: Sequence[TaskRow] = (await session.execute(stmt)).mappings().all()
    return rows


async def get_task(session: AsyncSession, *, user_id: str, task_id: str) -> TaskRow:
    stmt = _owned_select(user_id).where(tasks.c.id == _task_uuid(task_id))
    row: TaskRow | None = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise TaskNotFound()
    return row


async def create_task(session: AsyncSession, *, user_id: str, data: TaskCreate) -> TaskRow:
    now = _now()
    stmt = (
        insert(tasks)
        .values(
            id=uuid.uuid4(),
            user_id=user_id,
            title=data.title,
            description=data.description,
            completed=data.completed,
            created_at=now,
            updated_at=now,
        )
        .returning(*COLUMNS)
    )
    row = (await session.execute(stmt)).mappings().one()
    await session.commit()
    return row


async def update_task(
    session: AsyncSession, *, user_id: str, task_id: str, changes: TaskUpdate
) -> TaskRow:
    """Apply the fields the client sent; `updated_at` moves only if a value really changes."""
    values = changes.changes()
    if not values:
        return await get_task(session, user_id=user_id, task_id=task_id)
    return await _apply_changes(session, user_id=user_id, task_id=task_id, values=values)


async def set_completed(
    session: AsyncSession, *, user_id: str, task_id: str, completed: bool | None
) -> TaskRow:
    """Set `completed` to the given value, or flip it when no value is given."""
    if completed is not None:
        return await _apply_changes(
            session, user_id=user_id, task_id=task_id, values={"completed": completed}
        )
    stmt = (
        _owned_update(user_id, task_id)
        .values(completed=not_(tasks.c.completed), updated_at=_now())
        .returning(*COLUMNS)
    )
    return await _write_one(session, stmt)


async def delete_task(session: AsyncSession, *, user_id: str, task_id: str) -> None:
    stmt = _owned_delete(user_id, task_id).returning(tasks.c.id)
    if (await session.execute(stmt)).first() is None:
        await session.rollback()
        raise TaskNotFound()
    await session.commit()


async def _apply_changes(
    session: AsyncSession, *, user_id: str, task_id: str, values: Mapping[str, Any]
) -> TaskRow:
    changed = or_(*(tasks.c[name].is_distinct_from(value) for name, value in values.items()))
    stmt = (
        _owned_update(user_id, task_id)
        .values(**values, updated_at=case((changed, _now_literal()), else_=tasks.c.updated_at))
        .returning(*COLUMNS)
    )
    return await _write_one(session, stmt)


async def _write_one(session: AsyncSession, stmt: Update) -> TaskRow:
    row = (await session.execute(stmt)).mappings().first()
    if row is None:
        await session.rollback()
        raise TaskNotFound()
    await session.commit()
    return row
