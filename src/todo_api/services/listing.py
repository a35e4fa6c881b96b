"""Listing a user's tasks: filters, a total order, and keyset pages that never use OFFSET.

A page reads one row more than asked for, which says whether another follows; its cursor names
the last row's position and the listing it belongs to (`cursors`). The statements are
`data.tasks`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from todo_api.data import tasks as store
from todo_api.data.tasks import TaskFilter, TaskRow
from todo_api.db.database import Executor
from todo_api.errors import SyncHorizonPassed
from todo_api.models.task import PRIORITY_RANKS
from todo_api.schemas.listing import TaskListQuery
from todo_api.schemas.task import tag_key
from todo_api.services import cursors


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


def check_sync_horizon(query: TaskListQuery, *, retention_days: float) -> None:
    """A sync (`include_deleted` with `updated_since`) from before the tombstone retention
    could miss deletions whose tombstones are purged: SyncHorizonPassed."""
    since = query.updated_since
    if not query.include_deleted or since is None:
        return
    if since < datetime.now(UTC) - timedelta(days=retention_days):
        raise SyncHorizonPassed(retention_days)


def plan_list(*, user_id: str, query: TaskListQuery) -> TaskFilter:
    """The page to read (one row more than asked, which says whether another follows). A
    cursor that does not belong to this listing is refused here, before any query."""
    sort = sort_of(query)
    order = sort.removeprefix("-")
    after = None
    # The instant `overdue` is judged at: the first page's, carried from page to page so a task
    # passing its due time while a client pages cannot be skipped or shown twice.
    now = None
    if query.cursor is not None:
        position = cursors.decode(
            query.cursor,
            order=order,
            fingerprint=listing_fingerprint(user_id, query),
            tombstones=query.include_deleted,
        )
        after, now = (position.key, position.task_id), position.now
    if query.overdue is not None:
        now = now or datetime.now(UTC)
    return TaskFilter(
        owner=user_id,
        order=order,
        ascending=not sort.startswith("-"),
        limit=query.limit + 1,
        completed=query.completed,
        priorities=[PRIORITY_RANKS[name] for name in query.priority],
        tag_keys=[tag_key(tag) for tag in query.tag],
        search=query.q,
        due_before=query.due_before,
        due_after=query.due_after,
        overdue=query.overdue,
        now=now,
        updated_since=query.updated_since,
        include_deleted=query.include_deleted,
        after=after,
    )


async def list_tasks(db: Executor, *, user_id: str, query: TaskListQuery) -> Page:
    """One page of the user's tasks matching `query`, and the cursor of the next, if any."""
    page = plan_list(user_id=user_id, query=query)
    rows = await store.list_tasks(db, page)
    if len(rows) <= query.limit:
        return Page(rows=rows, next_cursor=None)
    rows = rows[: query.limit]
    return Page(
        rows=rows, next_cursor=cursor_after(rows[-1], user_id=user_id, query=query, page=page)
    )


def cursor_after(row: TaskRow, *, user_id: str, query: TaskListQuery, page: TaskFilter) -> str:
    """The cursor of the page that follows `row` in this listing."""
    return cursors.encode(
        cursors.Position(store.position_key(page.order, row), row["id"], page.now),
        order=page.order,
        fingerprint=listing_fingerprint(user_id, query),
    )


async def task_stats(db: Executor, *, user_id: str) -> dict[str, Any]:
    """Counts of the user's tasks: in all, done, open, overdue, and by priority (one query)."""
    counts = await store.count_tasks(db, owner=user_id, now=datetime.now(UTC))
    return {
        "total": counts["total"],
        "completed": counts["completed"],
        "pending": counts["total"] - counts["completed"],
        "overdue": counts["overdue"],
        "by_priority": {name: counts[name] for name in PRIORITY_RANKS},
    }


async def clear_completed(db: Executor, *, user_id: str) -> int:
    """Delete the user's completed tasks in one statement (each becomes a tombstone, all at
    one instant); how many there were."""
    return await store.tombstone_completed(db, owner=user_id, now=datetime.now(UTC))
