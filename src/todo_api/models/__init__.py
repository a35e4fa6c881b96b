"""Table models. Importing this package registers every table on `SQLModel.metadata`."""

from sqlmodel import SQLModel

# Constraint and index names follow one convention, so migrations are deterministic.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

from todo_api.models.idempotency import IdempotencyKey  # noqa: E402
from todo_api.models.task import Task, TaskBase, UserClock  # noqa: E402

metadata = SQLModel.metadata

__all__ = ["IdempotencyKey", "Task", "TaskBase", "UserClock", "metadata"]
