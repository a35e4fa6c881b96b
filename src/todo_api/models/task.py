"""The `tasks` table, and the per-user change clocks that order its changes."""

from __future__ import annotations

import uuid
from typing import Any, Final

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Uuid,
    text,
)

from todo_api.models.base import metadata
from todo_api.models.types import TAG_MAX_LENGTH, TagList, UTCDateTime, due_sort_key
from todo_api.users import USER_ID_MAX_LENGTH

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 1000

MAX_TAGS = 20

# Priorities are stored as small integers, so "high > medium > low" is the column's own order.
PRIORITY_RANKS = {"low": 1, "medium": 2, "high": 3}
PRIORITY_NAMES = {rank: name for name, rank in PRIORITY_RANKS.items()}
DEFAULT_PRIORITY: Final = "medium"


def _no_tags() -> list[str]:
    return []


# A user's task. Every query is scoped by `user_id`, so the indexes lead with it.
tasks = Table(
    "tasks",
    metadata,
    Column("id", Uuid(), primary_key=True, default=uuid.uuid4),
    Column("user_id", String(USER_ID_MAX_LENGTH), nullable=False),
    Column("title", String(TITLE_MAX_LENGTH), nullable=False),
    Column("description", String(DESCRIPTION_MAX_LENGTH), nullable=True),
    Column("completed", Boolean(), nullable=False, default=False),
    Column(
        "priority",
        SmallInteger(),
        nullable=False,
        server_default=text(str(PRIORITY_RANKS[DEFAULT_PRIORITY])),
    ),
    Column("due_at", UTCDateTime(), nullable=True),
    # `tags` as the client gave them; `tag_keys` case-folded, for case-insensitive filtering
    # (folding can lengthen a tag: "ß" is "ss", so keys are not bounded).
    Column("tags", TagList(TAG_MAX_LENGTH), nullable=False, default=_no_tags),
    Column("tag_keys", TagList(), nullable=False, default=_no_tags),
    Column("completed_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # 1 when created, one more with every change: the task's ETag.
    Column("version", Integer(), nullable=False, server_default=text("1")),
    # Set when the task is deleted: it is then a tombstone, gone from every read and write but
    # still listed by incremental sync (`include_deleted`) until purged. Its title, description,
    # tags and due date are erased; its completion, priority and timestamps stay.
    Column("deleted_at", UTCDateTime(), nullable=True),
    CheckConstraint("priority BETWEEN 1 AND 3", name="priority_rank"),
)

# The instant of each user's latest change, on PostgreSQL: the lock that puts a user's changes
# in commit order (see `data.sql.change_instant`). SQLite, which serializes writes itself,
# leaves it empty.
user_clocks = Table(
    "user_clocks",
    metadata,
    Column("user_id", String(USER_ID_MAX_LENGTH), primary_key=True),
    Column("changed_at", UTCDateTime(), nullable=False),
)

_columns = tasks.c

# One index per sort order, each leading with the owner and ending with the id that breaks ties,
# so every listing (either direction: indexes are read backwards too) is an index scan of the
# user's rows that stops after one page. They hold live tasks only (tombstones cost a listing
# nothing), except `updated_at`'s, through which a sync also reads tombstones.
_LIVE = _columns.deleted_at.is_(None)
_LIVE_ONLY: dict[str, Any] = {"postgresql_where": _LIVE, "sqlite_where": _LIVE}
Index(
    "ix_tasks_user_id_created_at_id",
    _columns.user_id,
    _columns.created_at.desc(),
    _columns.id.desc(),
    **_LIVE_ONLY,
)
Index("ix_tasks_user_id_updated_at_id", _columns.user_id, _columns.updated_at, _columns.id)
Index(
    "ix_tasks_user_id_priority_id", _columns.user_id, _columns.priority, _columns.id, **_LIVE_ONLY
)
Index("ix_tasks_user_id_title_id", _columns.user_id, _columns.title, _columns.id, **_LIVE_ONLY)
Index(
    "ix_tasks_user_id_due_asc_id",
    _columns.user_id,
    due_sort_key(_columns.due_at, ascending=True),
    _columns.id,
    **_LIVE_ONLY,
)
Index(
    "ix_tasks_user_id_due_desc_id",
    _columns.user_id,
    due_sort_key(_columns.due_at, ascending=False),
    _columns.id,
    **_LIVE_ONLY,
)
# Tombstones, for their purge: a partial index, as small as there are tombstones.
_TOMBSTONE = _columns.deleted_at.is_not(None)
Index(
    "ix_tasks_deleted_at",
    _columns.deleted_at,
    postgresql_where=_TOMBSTONE,
    sqlite_where=_TOMBSTONE,
)
