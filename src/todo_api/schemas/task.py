"""Request and response bodies for tasks."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    StrictBool,
    StrictStr,
    field_validator,
)
from pydantic_core import PydanticCustomError

from todo_api.models.task import (
    DEFAULT_PRIORITY,
    DESCRIPTION_MAX_LENGTH,
    MAX_TAGS,
    TITLE_MAX_LENGTH,
)
from todo_api.models.types import TAG_MAX_LENGTH
from todo_api.schemas.text import MULTILINE_PATTERN, REFUSED, refuse_characters

# Whitespace trimmed from a title: the non-control whitespace of JSON Schema's (ECMA-262) `\s`,
# so the pattern published in OpenAPI and this validator agree exactly.
_SPACE = " \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"


def _trimmed_pattern(max_length: int) -> str:
    """JSON Schema pattern of a line of text: 1-`max_length` characters once trimmed."""
    return (
        f"^[{_SPACE}]*[^{_SPACE}{REFUSED}]"
        f"(?:[^{REFUSED}]{{0,{max_length - 2}}}[^{_SPACE}{REFUSED}])?[{_SPACE}]*$"
    )


TITLE_PATTERN = _trimmed_pattern(TITLE_MAX_LENGTH)
DESCRIPTION_PATTERN = MULTILINE_PATTERN
_edge_space = re.compile(f"^[{_SPACE}]+|[{_SPACE}]+$")


def _trimmed(value: str, max_length: int) -> str:
    """A line of text trimmed of surrounding whitespace: no refused character (`text`),
    1-max_length."""
    refuse_characters(value)
    value = _edge_space.sub("", value)
    if not 1 <= len(value) <= max_length:
        kind = "string_too_short" if not value else "string_too_long"
        raise PydanticCustomError(kind, f"must be 1-{max_length} characters after trimming")
    return value


def _check_title(value: str) -> str:
    return _trimmed(value, TITLE_MAX_LENGTH)


def _check_description(value: str) -> str:
    refuse_characters(value, multiline=True)
    if len(value) > DESCRIPTION_MAX_LENGTH:
        raise PydanticCustomError(
            "string_too_long", f"must be at most {DESCRIPTION_MAX_LENGTH} characters"
        )
    return value


Title = Annotated[
    StrictStr,
    AfterValidator(_check_title),
    Field(
        description=f"1-{TITLE_MAX_LENGTH} characters after trimming surrounding whitespace; "
        "no control characters, bidirectional controls or noncharacters.",
        json_schema_extra={"pattern": TITLE_PATTERN},
        examples=["Buy milk"],
    ),
]
Description = Annotated[
    StrictStr,
    AfterValidator(_check_description),
    Field(
        description=f"At most {DESCRIPTION_MAX_LENGTH} characters; may hold tabs and newlines "
        "(LF or CR LF), no other control character, bidirectional control or noncharacter.",
        json_schema_extra={"pattern": DESCRIPTION_PATTERN, "maxLength": DESCRIPTION_MAX_LENGTH},
        examples=["2 litres, semi-skimmed"],
    ),
]
Completed = Annotated[StrictBool, Field(description="Whether the task is done.", examples=[False])]
PriorityName = Literal["low", "medium", "high"]
Priority = Annotated[
    PriorityName,
    Field(description="`high` > `medium` > `low`.", examples=["high"]),
]

_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_AND_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_means_midnight_utc(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if _DATE_ONLY.fullmatch(value):
            return f"{value}T00:00:00Z"
        if _DATE_AND_TIME.match(value):
            return value
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    raise PydanticCustomError("timestamp_type", "must be an RFC 3339 timestamp or a date")


# The instants a timestamp may name: inside what every part (Python, asyncpg, SQLite's text
# form) represents exactly, and clear of the sentinels that sort missing due dates last.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)


def _in_utc(value: datetime) -> datetime:
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise PydanticCustomError(
            "timestamp_out_of_range", "must be between 0001-01-02 and 9999-12-30 (UTC)"
        )
    return moment


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_date_means_midnight_utc),
    AfterValidator(_in_utc),
    Field(
        description="An RFC 3339 timestamp with an offset, or a date (`2026-12-01`: the start of "
        "that day in UTC). A timestamp without an offset is refused.",
        examples=["2026-12-01T17:00:00Z"],
    ),
]


def _check_tag(value: str) -> str:
    return _trimmed(value, TAG_MAX_LENGTH)


TAG_PATTERN = _trimmed_pattern(TAG_MAX_LENGTH)
Tag = Annotated[
    StrictStr,
    AfterValidator(_check_tag),
    Field(json_schema_extra={"pattern": TAG_PATTERN}, examples=["errands"]),
]


def tag_key(tag: str) -> str:
    """How tags compare: case-insensitively."""
    return tag.casefold()


def _distinct_tags(tags: list[str] | None) -> list[str]:
    """Tags once each: a repeat (compared case-insensitively, after trimming) is dropped, and
    the first spelling kept."""
    distinct: dict[str, str] = {}
    for tag in tags or []:
        distinct.setdefault(tag_key(tag), tag)
    return list(distinct.values())


Tags = Annotated[
    list[Tag] | None,
    Field(
        max_length=MAX_TAGS,
        description=f"Up to {MAX_TAGS} tags of 1-{TAG_MAX_LENGTH} characters, kept in the order "
        "given; tags compare case-insensitively, so a repeat is dropped (the first spelling "
        "stays); null means none.",
        examples=[["errands", "home"]],
    ),
    AfterValidator(_distinct_tags),
]


def _not_nullable(schema: dict[str, Any]) -> None:
    """Publish an optional-but-not-null field as its non-null type (omit it, never send null)."""
    variants = schema.pop("anyOf", None)
    if variants:
        schema.update(next(v for v in variants if v.get("type") != "null"))
    schema.pop("default", None)


class TaskCreate(BaseModel):
    """A new task. Unknown and read-only fields are ignored."""

    title: Title
    description: Description | None = None
    completed: Completed = False
    priority: Priority = DEFAULT_PRIORITY
    due_at: Timestamp | None = Field(default=None, description="When the task is due; null: never.")
    tags: Tags = Field(default=None)

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("null_not_allowed", "may not be null")
        return value


class TaskUpdate(BaseModel):
    """A partial change: fields sent are changed, fields omitted keep their value."""

    title: Title | None = Field(
        default=None, description="New title; null is refused.", json_schema_extra=_not_nullable
    )
    description: Description | None = Field(
        default=None, description="New description; null clears it."
    )
    completed: Completed | None = Field(
        default=None, description="New state; null is refused.", json_schema_extra=_not_nullable
    )
    priority: Priority | None = Field(
        default=None, description="New priority; null is refused.", json_schema_extra=_not_nullable
    )
    due_at: Timestamp | None = Field(default=None, description="New due date; null clears it.")
    tags: Tags = Field(default=None, description="New tags, replacing the old; null clears them.")

    @field_validator("title", "completed", "priority")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only for values the client sent, so an omitted field stays "unchanged".
        if value is None:
            raise PydanticCustomError("null_not_allowed", "may not be null")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, with their new values (`tags: null` means none)."""
        sent = {name: getattr(self, name) for name in self.model_fields_set}
        if "tags" in sent:
            sent["tags"] = sent["tags"] or []
        return sent


class TaskCompletion(BaseModel):
    """Set the completion state explicitly (idempotent, safe to retry)."""

    completed: Completed


class TaskPublic(BaseModel):
    """A task as the API returns it. Timestamps are RFC 3339 in UTC with a `Z` suffix."""

    id: uuid.UUID = Field(
        description="Server-generated identifier.",
        examples=["0b3c7c5e-8f9a-4d2b-9a51-6f1f3e2d4c10"],
    )
    user_id: str = Field(description="The owner.", examples=["alice"])
    title: str = Field(examples=["Buy milk"])
    description: str | None = Field(examples=["2 litres, semi-skimmed"])
    completed: bool = Field(examples=[False])
    priority: PriorityName = Field(examples=["medium"])
    due_at: datetime | None = Field(
        description="When the task is due, or null.", examples=["2026-12-01T17:00:00Z"]
    )
    tags: list[str] = Field(description="The task's tags, in the order given.", examples=[["home"]])
    completed_at: datetime | None = Field(
        description="When the task was last completed; null while it is open.",
        examples=[None],
    )
    created_at: datetime = Field(
        description="When the task was created; never changes.",
        examples=["2026-11-26T09:30:00.123456Z"],
    )
    updated_at: datetime = Field(
        description="When the task last changed.", examples=["2026-11-26T09:45:12.654321Z"]
    )


class TaskTombstone(BaseModel):
    """A deleted task, as incremental sync (`include_deleted=true`) lists it."""

    id: uuid.UUID = Field(examples=["0b3c7c5e-8f9a-4d2b-9a51-6f1f3e2d4c10"])
    deleted: Literal[True] = Field(
        description="Always true: the task was deleted.", examples=[True]
    )
    deleted_at: datetime = Field(
        description="When the task was deleted.", examples=["2026-11-27T08:00:00.000001Z"]
    )
    updated_at: datetime = Field(
        description="Its last change: the deletion (the same instant as `deleted_at`).",
        examples=["2026-11-27T08:00:00.000001Z"],
    )
