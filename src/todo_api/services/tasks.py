"""Task rules: what creating, reading, changing and deleting a task means. Statements live in
`data.tasks`; each operation here is one of them (a conditional write that fails reads the
task's current version to say why). Another user's task, or a deleted one, is not found."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from todo_api.data import tasks as store
from todo_api.data.tasks import TaskRow
from todo_api.db.database import Executor
from todo_api.errors import PreconditionFailed, TaskNotFound
from todo_api.models.task import PRIORITY_RANKS
from todo_api.schemas.task import TaskCreate, TaskUpdate, tag_key

__all__ = [
    "MAX_MATCHED_VERSIONS",
    "TaskRow",
    "create_task",
    "delete_task",
    "get_task",
    "set_completed",
    "update_task",
]

# The most versions one `If-Match` may name.
MAX_MATCHED_VERSIONS = store.MATCH_SLOTS
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def _task_uuid(task_id: str) -> uuid.UUID:
    # Only the hyphenated form names a task (hex digits in either case, as UUIDs are read).
    if not _CANONICAL_UUID.fullmatch(task_id):
        raise TaskNotFound()
    return uuid.UUID(task_id)


async def get_task(db: Executor, *, user_id: str, task_id: str) -> TaskRow:
    row = await store.fetch_task(db, owner=user_id, task_id=_task_uuid(task_id))
    if row is None:
        raise TaskNotFound()
    return row


async def create_task(db: Executor, *, user_id: str, data: TaskCreate) -> TaskRow:
    tags = data.tags or []
    values = {
        "id": uuid.uuid4(),
        "title": data.title,
        "description": data.description,
        "completed": data.completed,
        "priority": PRIORITY_RANKS[data.priority],
        "due_at": data.due_at,
        "tags": tags,
        "tag_keys": [tag_key(tag) for tag in tags],
    }
    return await store.insert_task(db, owner=user_id, values=values, now=datetime.now(UTC))


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
    task = _task_uuid(task_id)
    row = await store.toggle_completed(
        db, owner=user_id, task_id=task, versions=if_match, now=datetime.now(UTC)
    )
    return await _written(db, row, user_id, task, if_match)


async def delete_task(
    db: Executor, *, user_id: str, task_id: str, if_match: Sequence[int] | None = None
) -> None:
    """Make the task a tombstone: gone from every read and write, listed only by sync."""
    task = _task_uuid(task_id)
    deleted = await store.tombstone_task(
        db, owner=user_id, task_id=task, versions=if_match, now=datetime.now(UTC)
    )
    if not deleted:
        await _refusal(db, user_id, task, if_match)


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
    task = _task_uuid(task_id)
    row = await store.update_task(
        db, owner=user_id, task_id=task, columns=columns, versions=if_match, now=datetime.now(UTC)
    )
    return await _written(db, row, user_id, task, if_match)


async def _written(
    db: Executor,
    row: TaskRow | None,
    user_id: str,
    task_id: uuid.UUID,
    if_match: Sequence[int] | None,
) -> TaskRow:
    """The task a write returned; without one, why nothing was written."""
    if row is None:
        await _refusal(db, user_id, task_id, if_match)
    return row


async def _refusal(
    db: Executor, user_id: str, task_id: uuid.UUID, if_match: Sequence[int] | None
) -> NoReturn:
    """Why a write of one task changed nothing: the task is missing (404), or, for a
    conditional write, it is at another version (412, with the version it is at)."""
    if if_match is not None:
        current = await store.current_version(db, owner=user_id, task_id=task_id)
        if current is not None:
            raise PreconditionFailed(current)
    raise TaskNotFound()
