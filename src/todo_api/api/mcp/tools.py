"""The MCP tools: the task operations of the REST API, for a chat agent.

Each tool takes its arguments as the REST schemas define them (`schemas/`, so a rule is written
once), runs one service call as the request's subject, and returns what the REST API would
return, plus the task's `version` (REST's ETag). No tool takes a user id: the subject is the
token's, and a prompt cannot name another user.

A refusal is the same error REST raises (`errors.AppError`), told as a tool error an agent can
act on: which field, what to do next.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
from mcp import types
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette import status
from starlette.responses import Response

from todo_api.api.representations import synced
from todo_api.db.database import Database, Executor
from todo_api.errors import (
    AppError,
    PreconditionFailed,
    RateLimited,
    TaskNotFound,
)
from todo_api.http.etags import MAX_VERSION
from todo_api.http.problems import field_errors
from todo_api.http.responses import json_bytes, row_response
from todo_api.models.idempotency import KEY_MAX_LENGTH
from todo_api.schemas.listing import Cleared, TaskListQuery, TaskStats
from todo_api.schemas.task import Completed, TaskCreate, TaskPublic, TaskTombstone, TaskUpdate
from todo_api.services import idempotency, listing
from todo_api.services import tasks as service

logger = logging.getLogger(__name__)

# The outcome of a call that succeeded; a refusal's is its problem type's name (`not-found`).
OK = "ok"
# What a fingerprint names instead of an HTTP method: a tool's call.
_FINGERPRINT_METHOD = "MCP"

TaskId = Annotated[
    str,
    Field(
        description="The task's id (a UUID), as add_task or list_tasks returned it.",
        json_schema_extra={"format": "uuid"},
    ),
]
ExpectedVersion = Annotated[
    int | None,
    Field(
        default=None,
        ge=1,
        le=MAX_VERSION,
        description="Only if the task is still at this version (the `version` you last read): "
        "if someone changed it since, nothing is written and the error names its current "
        "version. Omit to change it whatever its version.",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Field(
        default=None,
        min_length=1,
        max_length=KEY_MAX_LENGTH,
        pattern="^[ -~]+$",
        description="A unique value (a UUID) for this task; send the same one when retrying "
        "the call, and the task is created once, the retry answered with the same task.",
    ),
]


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskArguments(_Arguments):
    task_id: TaskId


class AddTaskArguments(TaskCreate):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: IdempotencyKey


class UpdateTaskArguments(TaskUpdate):
    model_config = ConfigDict(extra="forbid")

    task_id: TaskId
    expected_version: ExpectedVersion

    def changes(self) -> dict[str, Any]:
        return {name: value for name, value in super().changes().items() if name in _UPDATABLE}


_UPDATABLE = frozenset(TaskUpdate.model_fields)


class SetCompletedArguments(_Arguments):
    task_id: TaskId
    completed: Completed
    expected_version: ExpectedVersion


class DeleteTaskArguments(_Arguments):
    task_id: TaskId
    expected_version: ExpectedVersion


class NoArguments(_Arguments):
    pass


class TaskResult(TaskPublic):
    version: int = Field(
        description="Changes with every write: pass it as `expected_version` to change the task "
        "only if nobody else has since you read it.",
        examples=[3],
    )


class TaskPage(BaseModel):
    tasks: list[TaskResult | TaskTombstone] = Field(
        description="The tasks of this page, in the order asked for; with `include_deleted`, "
        "deleted ones as tombstones."
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters and sort) for the next page; "
        "null on the last page."
    )


class Deleted(BaseModel):
    id: str = Field(description="The deleted task's id.")
    deleted: bool = Field(description="Always true.")


@dataclass(frozen=True)
class Call:
    """What a tool runs with: the database, the subject it acts for, and the service's settings."""

    db: Database
    user_id: str
    idempotency: idempotency.IdempotencyKeys
    tombstone_retention_days: float


Run = Callable[[Call, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    arguments: type[BaseModel]
    result: type[BaseModel]
    annotations: types.ToolAnnotations
    run: Run
    # Argument descriptions that differ from REST's (where REST speaks of query parameters).
    described: Mapping[str, str] = field(default_factory=dict)

    def definition(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=_schema(self.arguments, self.described),
            output_schema=_schema(self.result, {}),
            annotations=self.annotations,
        )


def _schema(model: type[BaseModel], described: Mapping[str, str]) -> dict[str, Any]:
    """`model`'s JSON Schema as a tool publishes it: without the patterns (kilobytes of
    character classes an agent would pay for in every prompt; the server applies them) and
    titles, and with descriptions that speak of arguments rather than query parameters."""
    schema: dict[str, Any] = _without_noise(model.model_json_schema())
    schema.pop("description", None)
    for name, text in described.items():
        schema["properties"][name]["description"] = text
    return schema


def _without_noise(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _without_noise(value)
            for key, value in node.items()
            if key not in ("pattern", "title") or not isinstance(value, str)
        }
    if isinstance(node, list):
        return [_without_noise(item) for item in node]
    return node


def _wire(content: Any) -> Any:
    """A row (or rows) exactly as the REST API writes it: the same encoder, the same text."""
    return orjson.loads(json_bytes(content))


def _task(row: service.TaskRow) -> dict[str, Any]:
    task: dict[str, Any] = _wire(dict(row.items()))
    return task


def _versions(expected_version: int | None) -> list[int] | None:
    return None if expected_version is None else [expected_version]


async def _list_tasks(call: Call, query: TaskListQuery) -> dict[str, Any]:
    listing.check_sync_horizon(query, retention_days=call.tombstone_retention_days)
    page = await listing.list_tasks(call.db, user_id=call.user_id, query=query)
    if query.include_deleted:
        rows = [synced(row) for row in page.rows]
    else:
        rows = [dict(row.items()) for row in page.rows]
    return {"tasks": _wire(rows), "next_cursor": page.next_cursor}


async def _get_task(call: Call, arguments: TaskArguments) -> dict[str, Any]:
    row = await service.get_task(call.db, user_id=call.user_id, task_id=arguments.task_id)
    return _task(row)


async def _add_task(call: Call, arguments: AddTaskArguments) -> dict[str, Any]:
    async def create(executor: Executor) -> Response:
        row = await service.create_task(executor, user_id=call.user_id, data=arguments)
        return row_response(row, status_code=status.HTTP_201_CREATED)

    if arguments.idempotency_key is None:
        response = await create(call.db)
    else:
        payload = arguments.model_dump(mode="json", exclude_unset=True)
        payload.pop("idempotency_key")
        response = await call.idempotency.run(
            call.db,
            user_id=call.user_id,
            key=idempotency.parse_key(arguments.idempotency_key),
            request_fingerprint=idempotency.fingerprint(_FINGERPRINT_METHOD, "add_task", payload),
            operation=create,
        )
    return orjson.loads(bytes(response.body))  # type: ignore[no-any-return]


async def _update_task(call: Call, arguments: UpdateTaskArguments) -> dict[str, Any]:
    row = await service.update_task(
        call.db,
        user_id=call.user_id,
        task_id=arguments.task_id,
        changes=arguments,
        if_match=_versions(arguments.expected_version),
    )
    return _task(row)


async def _set_completed(call: Call, arguments: SetCompletedArguments) -> dict[str, Any]:
    row = await service.set_completed(
        call.db,
        user_id=call.user_id,
        task_id=arguments.task_id,
        completed=arguments.completed,
        if_match=_versions(arguments.expected_version),
    )
    return _task(row)


async def _delete_task(call: Call, arguments: DeleteTaskArguments) -> dict[str, Any]:
    await service.delete_task(
        call.db,
        user_id=call.user_id,
        task_id=arguments.task_id,
        if_match=_versions(arguments.expected_version),
    )
    return {"id": arguments.task_id.lower(), "deleted": True}


async def _task_stats(call: Call, _: NoArguments) -> dict[str, Any]:
    return await listing.task_stats(call.db, user_id=call.user_id)


async def _clear_completed(call: Call, _: NoArguments) -> dict[str, Any]:
    return {"deleted": await listing.clear_completed(call.db, user_id=call.user_id)}


def _annotations(*, read_only: bool, destructive: bool, idempotent: bool) -> types.ToolAnnotations:
    return types.ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=False,
    )


_READ = _annotations(read_only=True, destructive=False, idempotent=True)

TOOLS: tuple[Tool, ...] = (
    Tool(
        name="list_tasks",
        title="List tasks",
        description="List the user's tasks, newest first unless `sort` says otherwise. Filters "
        "combine with AND: `completed`, `priority` (any of), `tag` (all of), `q` (text in the "
        "title or description), `due_before`/`due_after`, `overdue`. Returns up to `limit` "
        "tasks (default 100) and `next_cursor` when more follow: call again with it and the "
        "same filters for the next page. `updated_since` with `include_deleted` lists what "
        "changed since a moment, deletions included.",
        arguments=TaskListQuery,
        result=TaskPage,
        annotations=_READ,
        run=_list_tasks,
        described={
            "priority": "Only tasks of any of these priorities.",
            "tag": "Only tasks with all of these tags (compared case-insensitively).",
            "cursor": "The `next_cursor` of the previous call: where the next page starts. "
            "Only valid with the same filters and sort.",
            "include_deleted": "Also list deleted tasks, as `{id, deleted: true, deleted_at, "
            "updated_at}`, whatever the other filters.",
        },
    ),
    Tool(
        name="get_task",
        title="Get a task",
        description="Read one of the user's tasks by id, with its current `version`.",
        arguments=TaskArguments,
        result=TaskResult,
        annotations=_READ,
        run=_get_task,
    ),
    Tool(
        name="add_task",
        title="Add a task",
        description="Create a task for the user: a `title` (required), optional `description`, "
        "`priority` (low, medium or high; default medium), `due_at` (an RFC 3339 timestamp "
        "with an offset, or a date) and `tags`. Pass an `idempotency_key` so a retried call "
        "cannot create the task twice. Returns the new task.",
        arguments=AddTaskArguments,
        result=TaskResult,
        annotations=_annotations(read_only=False, destructive=False, idempotent=False),
        run=_add_task,
    ),
    Tool(
        name="update_task",
        title="Update a task",
        description="Change some fields of a task: only the fields given change (`description`, "
        "`due_at` or `tags` null clears them). Pass the `version` you read as "
        "`expected_version` to avoid overwriting someone else's change. Returns the task.",
        arguments=UpdateTaskArguments,
        result=TaskResult,
        annotations=_annotations(read_only=False, destructive=True, idempotent=True),
        run=_update_task,
    ),
    Tool(
        name="set_completed",
        title="Mark a task done or not done",
        description="Set a task's `completed` to true (done) or false (open); safe to retry. "
        "Returns the task.",
        arguments=SetCompletedArguments,
        result=TaskResult,
        annotations=_annotations(read_only=False, destructive=False, idempotent=True),
        run=_set_completed,
    ),
    Tool(
        name="delete_task",
        title="Delete a task",
        description="Delete a task. It is gone from every read afterwards (a second delete "
        "says it is not found).",
        arguments=DeleteTaskArguments,
        result=Deleted,
        annotations=_annotations(read_only=False, destructive=True, idempotent=True),
        run=_delete_task,
    ),
    Tool(
        name="task_stats",
        title="Summarize tasks",
        description="Count the user's tasks: in all, completed, pending, overdue, and by priority.",
        arguments=NoArguments,
        result=TaskStats,
        annotations=_READ,
        run=_task_stats,
    ),
    Tool(
        name="clear_completed",
        title="Delete completed tasks",
        description="Delete all the user's completed tasks at once; returns how many. Ask the "
        "user first.",
        arguments=NoArguments,
        result=Cleared,
        annotations=_annotations(read_only=False, destructive=True, idempotent=True),
        run=_clear_completed,
    ),
)
BY_NAME = {tool.name: tool for tool in TOOLS}


async def call_tool(tool: Tool, call: Call, arguments: Mapping[str, Any]) -> tuple[Any, str]:
    """Run `tool`: its structured result and the outcome `OK`; raises `Refusal` otherwise."""
    try:
        parsed = tool.arguments.model_validate(arguments)
    except ValidationError as exc:
        raise Refusal.invalid(tool, exc) from None
    try:
        result = await tool.run(call, parsed)
    except AppError as exc:
        raise Refusal.of(tool, exc) from None
    return result, OK


class Refusal(Exception):
    """A call that did not happen, as a tool error: text an agent can act on, and the outcome
    the access log and the metrics record."""

    def __init__(self, text: str, outcome: str) -> None:
        super().__init__(text)
        self.text = text
        self.outcome = outcome

    @classmethod
    def invalid(cls, tool: Tool, exc: ValidationError) -> Refusal:
        errors = field_errors(exc.errors(include_url=False, include_input=False))
        return cls(_invalid(tool, errors), outcome="validation-error")

    @classmethod
    def of(cls, tool: Tool, exc: AppError) -> Refusal:
        outcome = exc.type.rsplit("/", 1)[-1]
        if isinstance(exc, PreconditionFailed):
            version = exc.current_version
            text = (
                f"Version conflict: the task changed since that version was read; it is now at "
                f"version {version}. Nothing was written. Read it again with get_task, then "
                f"retry with expected_version {version} if the change still makes sense."
            )
        elif isinstance(exc, TaskNotFound):
            text = f"{exc.detail} Call list_tasks to find the task's id."
        elif isinstance(exc, RateLimited):
            wait = exc.headers.get("Retry-After", "a few")
            text = f"Too many requests: the request budget is spent. Retry in {wait} seconds."
        elif exc.errors:
            text = _invalid(tool, exc.errors)
        else:
            text = exc.detail or exc.title
        return cls(text, outcome=outcome)


def _invalid(tool: Tool, errors: list[dict[str, str]]) -> str:
    named = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
    return f"Invalid arguments: {named}. Correct them and call {tool.name} again."


def tool_error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def tool_result(result: Any) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json_bytes(result).decode())],
        structured_content=result,
    )
