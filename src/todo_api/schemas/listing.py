"""Query parameters of the task list, the summary, and clearing completed tasks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from todo_api.models.task import MAX_TAGS
from todo_api.schemas.task import PriorityName, Tag, Timestamp
from todo_api.schemas.text import NO_REFUSED_PATTERN, refuse_characters

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
SEARCH_MAX_LENGTH = 200

SortKey = Literal[
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "due_at",
    "-due_at",
    "priority",
    "-priority",
    "title",
    "-title",
]


def _search_text(value: str | None) -> str | None:
    """The text to search for: no refused character (`text`), at most 200 characters once trimmed;
    blank means no search (a cleared search box)."""
    if value is None:
        return None
    refuse_characters(value)
    value = value.strip()
    if len(value) > SEARCH_MAX_LENGTH:
        raise PydanticCustomError(
            "string_too_long", f"must be at most {SEARCH_MAX_LENGTH} characters"
        )
    return value or None


class TaskListQuery(BaseModel):
    """Filters (combined with AND), order and page of `GET /api/{user_id}/tasks`."""

    model_config = ConfigDict(extra="forbid")

    completed: bool | None = Field(default=None, description="Only done (true) or open (false).")
    priority: list[PriorityName] = Field(
        default_factory=list, description="Any of these priorities (repeat the parameter)."
    )
    tag: list[Tag] = Field(
        default_factory=list,
        max_length=MAX_TAGS,
        description="All of these tags, compared case-insensitively (repeat the parameter).",
    )
    q: Annotated[str | None, AfterValidator(_search_text)] = Field(
        default=None,
        description="Case-insensitive text searched in the title and description.",
        json_schema_extra={"maxLength": SEARCH_MAX_LENGTH, "pattern": NO_REFUSED_PATTERN},
    )
    due_before: Timestamp | None = Field(default=None, description="Due strictly before this.")
    due_after: Timestamp | None = Field(default=None, description="Due at or after this.")
    overdue: bool | None = Field(
        default=None,
        description="true: due in the past and not completed; false: every other task.",
    )
    updated_since: Timestamp | None = Field(
        default=None,
        description="Only tasks changed after this instant (their `updated_at` is later). "
        "Incremental sync: pass the latest `updated_at` seen by the previous sync.",
    )
    include_deleted: bool = Field(
        default=False,
        description="Also list deleted tasks, as `{id, deleted: true, deleted_at, updated_at}` "
        "(kept for TOMBSTONE_RETENTION_DAYS), whatever the other filters (a deleted task has "
        "none of their fields). For a sync, keep the default order (`updated_at`).",
    )
    sort: SortKey = Field(
        default="-created_at",
        description="The order: a field, `-` first for descending. `id` breaks ties; tasks "
        "without a due date come last either way; priority orders high > medium > low. "
        "Not given: `updated_at` with `updated_since` or `include_deleted`, else `-created_at`.",
    )
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Page size.")
    cursor: str | None = Field(
        default=None,
        max_length=2048,
        description="Opaque: where the next page starts, from the previous page's `Link` header. "
        "It is only valid with the same filters and order.",
    )


class ClearQuery(BaseModel):
    """`DELETE /api/{user_id}/tasks` only clears completed tasks, and only when asked to."""

    model_config = ConfigDict(extra="forbid")

    completed: bool = Field(
        description="Must be true: delete the user's completed tasks.",
        json_schema_extra={"enum": [True]},
    )

    @field_validator("completed")
    @classmethod
    def _only_completed(cls, value: bool) -> bool:
        if not value:
            raise PydanticCustomError(
                "clear_completed_only", "must be true: only completed tasks can be cleared"
            )
        return value


class Cleared(BaseModel):
    deleted: int = Field(description="How many completed tasks were deleted.", examples=[3])


class PriorityCounts(BaseModel):
    low: int = Field(examples=[2])
    medium: int = Field(examples=[5])
    high: int = Field(examples=[1])


class TaskStats(BaseModel):
    """A summary of the user's tasks."""

    total: int = Field(examples=[8])
    completed: int = Field(examples=[3])
    pending: int = Field(examples=[5])
    overdue: int = Field(description="Due in the past and not completed.", examples=[1])
    by_priority: PriorityCounts = Field(examples=[{"low": 2, "medium": 5, "high": 1}])
