"""How a task row reads to a client, shared by the REST routes and the MCP tools."""

from __future__ import annotations

from typing import Any

from todo_api.services.tasks import TaskRow


def synced(row: TaskRow) -> dict[str, Any]:
    """A row of a sync listing (`include_deleted`): the task, or its tombstone."""
    if row["deleted_at"] is not None:
        return {
            "id": row["id"],
            "deleted": True,
            "deleted_at": row["deleted_at"],
            "updated_at": row["updated_at"],
        }
    task = dict(row.items())
    del task["deleted_at"]
    return task
