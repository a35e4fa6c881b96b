"""Task endpoints: parse, one service call, respond."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, status
from starlette.responses import Response

from todo_api.api import responses
from todo_api.api.deps import AdmittedDatabase, TaskID, UserID
from todo_api.core.responses import row_response, rows_response
from todo_api.schemas.task import TaskCompletion, TaskCreate, TaskPublic, TaskUpdate
from todo_api.services import tasks as service

# Characters a path segment may hold unencoded (RFC 3986 pchar).
PATH_SAFE = "!$&'()*+,;=:@-._~"

router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"])

_CREATED: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "The task was created.",
        "headers": {
            "Location": {"description": "The new task's URL.", "schema": {"type": "string"}},
        },
    }
}


@router.get(
    "",
    response_model=list[TaskPublic],
    responses=responses.COMMON,
    summary="List a user's tasks",
)
async def list_tasks(db: AdmittedDatabase, user_id: UserID) -> Response:
    """The user's tasks, newest first (an unknown user has none)."""
    rows = await service.list_tasks(db, user_id=user_id)
    return rows_response(rows)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    responses={**responses.COMMON, **responses.BODY, **_CREATED},
    summary="Create a task",
)
async def create_task(db: AdmittedDatabase, user_id: UserID, data: TaskCreate) -> Response:
    """Create a task; the response's `Location` header is its URL."""
    row = await service.create_task(db, user_id=user_id, data=data)
    location = f"/api/{quote(user_id, safe=PATH_SAFE)}/tasks/{row['id']}"
    return row_response(row, status_code=status.HTTP_201_CREATED, headers={"Location": location})


@router.get(
    "/{task_id}",
    response_model=TaskPublic,
    responses=responses.WITH_TASK,
    summary="Get a task",
)
async def get_task(db: AdmittedDatabase, user_id: UserID, task_id: TaskID) -> Response:
    """One task of the user."""
    row = await service.get_task(db, user_id=user_id, task_id=task_id)
    return row_response(row)


@router.put(
    "/{task_id}",
    response_model=TaskPublic,
    responses=responses.WITH_BODY,
    summary="Update a task",
)
async def replace_task(
    db: AdmittedDatabase, user_id: UserID, task_id: TaskID, changes: TaskUpdate
) -> Response:
    """Change the fields sent; omitted fields keep their value, `description: null` clears it."""
    row = await service.update_task(db, user_id=user_id, task_id=task_id, changes=changes)
    return row_response(row)


@router.patch(
    "/{task_id}",
    response_model=TaskPublic,
    responses=responses.WITH_BODY,
    summary="Patch a task",
)
async def patch_task(
    db: AdmittedDatabase, user_id: UserID, task_id: TaskID, changes: TaskUpdate
) -> Response:
    """JSON merge patch: the same partial semantics as PUT."""
    row = await service.update_task(db, user_id=user_id, task_id=task_id, changes=changes)
    return row_response(row)


@router.patch(
    "/{task_id}/complete",
    response_model=TaskPublic,
    responses=responses.WITH_BODY,
    summary="Toggle or set completion",
)
async def complete_task(
    db: AdmittedDatabase,
    user_id: UserID,
    task_id: TaskID,
    body: Annotated[TaskCompletion | None, Body()] = None,
) -> Response:
    """No body flips `completed`; `{"completed": true|false}` sets it (safe to retry)."""
    completed = body.completed if body is not None else None
    row = await service.set_completed(db, user_id=user_id, task_id=task_id, completed=completed)
    return row_response(row)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**responses.WITH_TASK, 204: {"description": "The task was deleted."}},
    summary="Delete a task",
)
async def delete_task(db: AdmittedDatabase, user_id: UserID, task_id: TaskID) -> Response:
    """Delete a task for good."""
    await service.delete_task(db, user_id=user_id, task_id=task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
