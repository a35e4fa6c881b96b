"""The `tasks` table."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, Index, String
from sqlmodel import Field, SQLModel

from todo_api.models.types import UTCDateTime

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 1000
USER_ID_MAX_LENGTH = 255


class TaskBase(SQLModel):
    """Fields a client may set."""

    title: str = Field(max_length=TITLE_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    completed: bool = False


class Task(TaskBase, table=True):
    """A user's task. Every query is scoped by `user_id`, so the indexes lead with it."""

    __tablename__ = "tasks"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: str = Field(sa_column=Column(String(USER_ID_MAX_LENGTH), nullable=False))
    title: str = Field(sa_column=Column(String(TITLE_MAX_LENGTH), nullable=False))
    description: str | None = Field(
        default=None, sa_column=Column(String(DESCRIPTION_MAX_LENGTH), nullable=True)
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


# Serves the default listing (newest first, id breaking ties) as an index scan per user.
Index(
    "ix_tasks_user_id_created_at_id",
    Task.__table__.c.user_id,  # type: ignore[attr-defined]
    Task.__table__.c.created_at.desc(),  # type: ignore[attr-defined]
    Task.__table__.c.id.desc(),  # type: ignore[attr-defined]
)
