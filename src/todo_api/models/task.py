"""The `tasks` table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

from sqlalchemy import CheckConstraint, Column, Index, Integer, SmallInteger, String, text
from sqlmodel import Field, SQLModel

from todo_api.models.types import TAG_MAX_LENGTH, TagList, UTCDateTime, due_sort_key

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 1000
USER_ID_MAX_LENGTH = 255
MAX_TAGS = 20

# Priorities are stored as small integers, so "high > medium > low" is the column's own order.
PRIORITY_RANKS = {"low": 1, "medium": 2, "high": 3}
PRIORITY_NAMES = {rank: name for name, rank in PRIORITY_RANKS.items()}
DEFAULT_PRIORITY: Final = "medium"


def _no_tags() -> list[str]:
    return []


class TaskBase(SQLModel):
    """Fields a client may set."""

    title: str = Field(max_length=TITLE_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    completed: bool = False


class Task(TaskBase, table=True):
    """A user's task. Every query is scoped by `user_id`, so the indexes lead with it."""

    __tablename__ = "tasks"
    __table_args__ = (CheckConstraint("priority BETWEEN 1 AND 3", name="priority_rank"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: str = Field(sa_column=Column(String(USER_ID_MAX_LENGTH), nullable=False))
    title: str = Field(sa_column=Column(String(TITLE_MAX_LENGTH), nullable=False))
    description: str | None = Field(
        default=None, sa_column=Column(String(DESCRIPTION_MAX_LENGTH), nullable=True)
    )
    priority: int = Field(
        sa_column=Column(
            SmallInteger,
            nullable=False,
            server_default=text(str(PRIORITY_RANKS[DEFAULT_PRIORITY])),
        )
    )
    due_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    # `tags` as the client gave them; `tag_keys` case-folded, for case-insensitive filtering
    # (folding can lengthen a tag: "ß" is "ss", so keys are not bounded).
    tags: list[str] = Field(
        sa_column=Column(TagList(TAG_MAX_LENGTH), nullable=False, default=_no_tags)
    )
    tag_keys: list[str] = Field(sa_column=Column(TagList(), nullable=False, default=_no_tags))
    completed_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # 1 when created, one more with every change: the task's ETag.
    version: int = Field(sa_column=Column(Integer, nullable=False, server_default=text("1")))
    # Set when the task is deleted: it is then a tombstone, gone from every read and write but
    # still listed by incremental sync (`include_deleted`) until purged. Its title, description,
    # tags and due date are erased; its completion, priority and timestamps stay.
    deleted_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class UserClock(SQLModel, table=True):
    """The instant of each user's latest change, on PostgreSQL: the lock that puts a user's
    changes in commit order (see `change_instant`). SQLite, which serializes writes itself,
    leaves it empty."""

    __tablename__ = "user_clocks"

    user_id: str = Field(
        sa_column=Column(String(USER_ID_MAX_LENGTH), primary_key=True, nullable=False)
    )
    changed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


_columns = Task.__table__.c  # type: ignore[attr-defined]

# One index per sort order, each leading with the owner and ending with the id that breaks ties,
# so every listing (either direction: indexes are read backwards too) is an index scan of the
# user's rows that stops after one page. They hold live tasks only (tombstones cost a listing
# nothing), except `updated_at`'s, through which a sync also reads tombstones.
_LIVE = _columns.deleted_at.is_(None)
_LIVE_ONLY = {"postgresql_where": _LIVE, "sqlite_where": _LIVE}
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
