"""Task endpoints: parse, one service call, respond."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Body, Query, Request, status
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from todo_api.api import documented
from todo_api.api.deps import TaskID, UserID, database_of
from todo_api.api.guarded import GuardedRoute
from todo_api.api.representations import synced
from todo_api.config import Settings
from todo_api.db.database import Database, Executor
from todo_api.errors import InvalidParameter
from todo_api.http.etags import MAX_HEADER_LENGTH, EntityTag, entity_tag, parse_entity_tags
from todo_api.http.responses import JSONResponse, row_response, rows_response
from todo_api.schemas.listing import Cleared, ClearQuery, TaskListQuery, TaskStats
from todo_api.schemas.task import (
    TaskCompletion,
    TaskCreate,
    TaskPublic,
    TaskTombstone,
    TaskUpdate,
)
from todo_api.services import idempotency, listing
from todo_api.services import tasks as service

# Versions start at 1: a conditional write naming no version can never match.
NO_VERSION = 0
# `*`: any current version of the task (compared by identity: no parsed list is this one).
ANY_VERSION: list[EntityTag] = []
# Characters a path segment may hold unencoded (RFC 3986 pchar).
PATH_SAFE = "!$&'()*+,;=:@-._~"

# Every route here passes the guard before anything else (see `GuardedRoute`).
router = APIRouter(
    prefix="/api/{user_id}/tasks",
    tags=["tasks"],
    route_class=GuardedRoute,
    default_response_class=JSONResponse,
)


class TaskIdConvertor(Convertor[str]):
    """A task id segment: anything but `stats`, so `PUT .../tasks/stats` is a 405 of the summary
    rather than an update of a task named "stats" (which could never exist anyway)."""

    regex = "(?!stats(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


# Starlette keeps one registry per process; the name is this service's own.
register_url_convertor("task", TaskIdConvertor())

_CREATED: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "The task was created.",
        "headers": {
            "Location": {"description": "The new task's URL.", "schema": {"type": "string"}},
            "ETag": documented.ETAG_HEADER,
            "Idempotent-Replayed": documented.REPLAYED_HEADER,
        },
    }
}


_LISTED: dict[int | str, dict[str, Any]] = {
    **documented.SYNC_HORIZON_PASSED,
    200: {
        "description": "One page of the user's tasks (an unknown user has none); with "
        "`include_deleted`, deleted ones among them as tombstones.",
        "headers": {
            "Link": {
                "description": 'Present when more tasks follow: `<URL>; rel="next"` (RFC 8288), '
                "the same listing with the `cursor` of the next page.",
                "schema": {"type": "string"},
            },
        },
    },
}


@router.get(
    "",
    response_model=list[TaskPublic | TaskTombstone],
    responses={**documented.COMMON, **_LISTED},
    summary="List a user's tasks",
)
async def list_tasks(
    request: Request,
    user_id: UserID,
    query: Annotated[TaskListQuery, Query()],
) -> Response:
    """A page of the user's tasks, filtered and ordered as asked (newest first by default).

    The body is a JSON array; when more tasks follow, the `Link` header names the next page.
    Pages never skip or repeat a task that exists throughout, even while tasks are added or
    deleted between requests.

    **Incremental sync**: `updated_since=<the latest updated_at seen>&include_deleted=true`
    lists every task changed since, in `updated_at` order, deleted ones as tombstones. Follow
    the `Link` pages to the end, then keep the last `updated_at` for the next sync. A user's
    changes get their `updated_at` in the order they commit, so a sync never misses a change
    that lands while it runs: that change comes later in the order, in this sync or the next.
    """
    db = database_of(request)
    settings: Settings = request.app.state.settings
    listing.check_sync_horizon(query, retention_days=settings.tombstone_retention_days)
    page = await listing.list_tasks(db, user_id=user_id, query=query)
    headers = {}
    if page.next_cursor is not None:
        headers["Link"] = f'<{_next_page_url(request, page.next_cursor)}>; rel="next"'
    if query.include_deleted:
        return JSONResponse([synced(row) for row in page.rows], headers=headers)
    return rows_response(page.rows, headers=headers)


def _next_page_url(request: Request, cursor: str) -> str:
    kept = [(name, value) for name, value in request.query_params.multi_items() if name != "cursor"]
    query = urlencode([*kept, ("cursor", cursor)], quote_via=quote)
    return f"{quote(request.scope['path'], safe='/' + PATH_SAFE)}?{query}"


@router.delete(
    "",
    response_model=Cleared,
    responses=documented.COMMON,
    summary="Clear completed tasks",
)
async def clear_completed(
    request: Request, user_id: UserID, _query: Annotated[ClearQuery, Query()]
) -> Response:
    """Delete all the user's completed tasks at once; `completed=true` is required, so a
    request without it deletes nothing (400)."""
    db = database_of(request)
    deleted = await listing.clear_completed(db, user_id=user_id)
    return JSONResponse({"deleted": deleted})


@router.get(
    "/stats",
    response_model=TaskStats,
    responses=documented.COMMON,
    summary="Summarize a user's tasks",
)
async def task_stats(request: Request, user_id: UserID) -> Response:
    """How many tasks the user has: in all, completed, pending, overdue and by priority."""
    db = database_of(request)
    stats = await listing.task_stats(db, user_id=user_id)
    return JSONResponse(stats)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    responses={**documented.COMMON, **documented.BODY, **documented.IDEMPOTENT, **_CREATED},
    openapi_extra={"parameters": [documented.IDEMPOTENCY_KEY]},
    summary="Create a task",
)
async def create_task(request: Request, user_id: UserID, data: TaskCreate) -> Response:
    """Create a task; the response's `Location` header is its URL.

    With an `Idempotency-Key`, retrying the request never creates a second task."""
    db = database_of(request)

    async def create(executor: Executor) -> Response:
        row = await service.create_task(executor, user_id=user_id, data=data)
        location = f"/api/{quote(user_id, safe=PATH_SAFE)}/tasks/{row['id']}"
        return _task_response(row, status_code=status.HTTP_201_CREATED, location=location)

    return await _at_most_once(
        request, db, user_id, lambda: data.model_dump(mode="json", exclude_unset=True), create
    )


@router.get(
    "/{task_id:task}",
    response_model=TaskPublic,
    responses={**documented.WITH_TASK, **documented.TAGGED, **documented.NOT_MODIFIED},
    openapi_extra={"parameters": [documented.IF_NONE_MATCH]},
    summary="Get a task",
)
async def get_task(request: Request, user_id: UserID, task_id: TaskID) -> Response:
    """One task of the user. With `If-None-Match` naming its current ETag: 304, no body."""
    db = database_of(request)
    row = await service.get_task(db, user_id=user_id, task_id=task_id)
    if _not_modified(request, row["version"]):
        headers = {"ETag": entity_tag(row["version"])}
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return _task_response(row)


# PUT and PATCH: the same partial update, documented alike.
_UPDATE_ROUTE: dict[str, Any] = {
    "response_model": TaskPublic,
    "responses": {**documented.WITH_BODY, **documented.TAGGED, **documented.CONDITIONAL},
    "openapi_extra": {"parameters": [documented.IF_MATCH]},
}


@router.put("/{task_id:task}", summary="Update a task", **_UPDATE_ROUTE)
async def replace_task(
    request: Request, user_id: UserID, task_id: TaskID, changes: TaskUpdate
) -> Response:
    """Change the fields sent; omitted fields keep their value, `description: null` clears it."""
    db = database_of(request)
    row = await service.update_task(
        db, user_id=user_id, task_id=task_id, changes=changes, if_match=_if_match(request)
    )
    return _task_response(row)


@router.patch("/{task_id:task}", summary="Patch a task", **_UPDATE_ROUTE)
async def patch_task(
    request: Request, user_id: UserID, task_id: TaskID, changes: TaskUpdate
) -> Response:
    """JSON merge patch: the same partial semantics as PUT."""
    return await replace_task(request, user_id, task_id, changes)


@router.patch(
    "/{task_id:task}/complete",
    response_model=TaskPublic,
    responses={
        **documented.WITH_BODY,
        **documented.TAGGED_REPLAYABLE,
        **documented.CONDITIONAL,
        **documented.IDEMPOTENT,
    },
    openapi_extra={"parameters": [documented.IF_MATCH, documented.IDEMPOTENCY_KEY]},
    summary="Toggle or set completion",
)
async def complete_task(
    request: Request,
    user_id: UserID,
    task_id: TaskID,
    body: Annotated[TaskCompletion | None, Body()] = None,
) -> Response:
    """No body flips `completed`; `{"completed": true|false}` sets it (safe to retry).

    With an `Idempotency-Key`, a retried flip flips only once."""
    db = database_of(request)
    completed = body.completed if body is not None else None
    if_match = _if_match(request)

    async def complete(executor: Executor) -> Response:
        row = await service.set_completed(
            executor, user_id=user_id, task_id=task_id, completed=completed, if_match=if_match
        )
        return _task_response(row)

    return await _at_most_once(
        request, db, user_id, lambda: body.model_dump(mode="json") if body else None, complete
    )


@router.delete(
    "/{task_id:task}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        **documented.WITH_TASK,
        **documented.CONDITIONAL,
        204: {"description": "The task was deleted."},
    },
    openapi_extra={"parameters": [documented.IF_MATCH]},
    summary="Delete a task",
)
async def delete_task(request: Request, user_id: UserID, task_id: TaskID) -> Response:
    """Delete a task: it is gone from every read and write (404), and incremental sync lists
    it as a tombstone until TOMBSTONE_RETENTION_DAYS have passed."""
    db = database_of(request)
    await service.delete_task(db, user_id=user_id, task_id=task_id, if_match=_if_match(request))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _at_most_once(
    request: Request,
    db: Database,
    user_id: str,
    payload: Callable[[], Any],
    operation: idempotency.Operation,
) -> Response:
    """Run `operation`; with an `Idempotency-Key`, only if that key has not run it already
    (`payload` gives the parsed body the key's request is recognised by)."""
    header = request.headers.get(idempotency.HEADER)
    if header is None:
        return await operation(db)
    keys: idempotency.IdempotencyKeys = request.app.state.idempotency
    return await keys.run(
        db,
        user_id=user_id,
        key=idempotency.parse_key(header),
        # Lowercased: a key is one user's, so what the case of its path can vary in is a task
        # id, which names the same task in either case.
        request_fingerprint=idempotency.fingerprint(
            request.method, request.scope["path"].lower(), payload()
        ),
        operation=operation,
    )


def _task_response(
    row: service.TaskRow, *, status_code: int = status.HTTP_200_OK, location: str | None = None
) -> Response:
    headers = {"ETag": entity_tag(row["version"])}
    if location is not None:
        headers["Location"] = location
    return row_response(row, status_code=status_code, headers=headers)


def _entity_tags(request: Request, header: str) -> list[EntityTag] | None:
    """The header's tags (`ANY_VERSION` for `*`), or None when absent; 400 when malformed."""
    # Repeated header lines are one comma-separated list (RFC 9110 §5.3).
    lines = request.headers.getlist(header)
    if not lines:
        return None
    value = ", ".join(lines)
    if len(value) > MAX_HEADER_LENGTH:
        message = f"must be at most {MAX_HEADER_LENGTH} characters"
        raise InvalidParameter(header, message, type_="header_too_long")
    try:
        tags = parse_entity_tags(value)
    except ValueError:
        message = 'must be "*" or a list of entity tags such as "3"'
        raise InvalidParameter(header, message, type_="invalid_header") from None
    return ANY_VERSION if tags is None else tags


def _if_match(request: Request) -> list[int] | None:
    """The versions a write may change (`If-Match`), or None for an unconditional write.

    Strong comparison: a weak tag, or one that names no version, matches nothing, so such a
    request can only fail with 412 (or 404 when the task does not exist)."""
    tags = _entity_tags(request, "If-Match")
    if tags is None or tags is ANY_VERSION:
        return None
    versions = sorted({v for tag in tags if not tag.weak and (v := tag.version()) is not None})
    if len(versions) > service.MAX_MATCHED_VERSIONS:
        message = f"may name at most {service.MAX_MATCHED_VERSIONS} versions"
        raise InvalidParameter("If-Match", message, type_="too_many_entity_tags")
    return versions or [NO_VERSION]


def _not_modified(request: Request, version: int) -> bool:
    """`If-None-Match` names the current version (weak comparison), or is `*`."""
    tags = _entity_tags(request, "If-None-Match")
    if tags is None:
        return False
    return tags is ANY_VERSION or any(tag.version() == version for tag in tags)
