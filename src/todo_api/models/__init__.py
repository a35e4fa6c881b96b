"""Tables, as SQLAlchemy Core defines them. Importing this package defines every table on
`metadata` (what migrations are compared with)."""

from todo_api.models.base import metadata
from todo_api.models.idempotency import idempotency_keys
from todo_api.models.task import tasks, user_clocks

__all__ = ["idempotency_keys", "metadata", "tasks", "user_clocks"]
