"""Request and response bodies for tasks."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictBool, StrictStr, field_validator
from pydantic_core import PydanticCustomError
from sqlmodel import SQLModel

from todo_api.models.task import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH, TaskBase

# Whitespace trimmed from a title: the non-control whitespace of JSON Schema's (ECMA-262) `\s`,
# so the pattern published in OpenAPI and this validator agree exactly.
_SPACE = " \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_CONTROL = "\\x00-\\x1f\\x7f"
_DESCRIPTION_CONTROL = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f"
# Lone surrogates cannot be stored as UTF-8; JSON can smuggle them in as `\\ud800` escapes.
_SURROGATE = "\\ud800-\\udfff"

TITLE_PATTERN = (
    f"^[{_SPACE}]*[^{_SPACE}{_CONTROL}]"
    f"(?:[^{_CONTROL}]{{0,{TITLE_MAX_LENGTH - 2}}}[^{_SPACE}{_CONTROL}])?[{_SPACE}]*$"
)
DESCRIPTION_PATTERN = f"^[^{_DESCRIPTION_CONTROL}]*$"

_title_control = re.compile(f"[{_CONTROL}{_SURROGATE}]")
_description_control = re.compile(f"[{_DESCRIPTION_CONTROL}{_SURROGATE}]")
_edge_space = re.compile(f"^[{_SPACE}]+|[{_SPACE}]+$")


def _check_title(value: str) -> str:
    if _title_control.search(value):
        raise PydanticCustomError("control_character", "must not contain control characters")
    value = _edge_space.sub("", value)
    if not 1 <= len(value) <= TITLE_MAX_LENGTH:
        kind = "string_too_short" if not value else "string_too_long"
        raise PydanticCustomError(kind, f"must be 1-{TITLE_MAX_LENGTH} characters after trimming")
    return value


def _check_description(value: str) -> str:
    if _description_control.search(value):
        raise PydanticCustomError(
            "control_character", "must not contain control characters other than tab and newline"
        )
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
        "no control characters.",
        json_schema_extra={"pattern": TITLE_PATTERN},
        examples=["Buy milk"],
    ),
]
Description = Annotated[
    StrictStr,
    AfterValidator(_check_description),
    Field(
        description=f"At most {DESCRIPTION_MAX_LENGTH} characters; may hold tabs and newlines.",
        json_schema_extra={"pattern": DESCRIPTION_PATTERN, "maxLength": DESCRIPTION_MAX_LENGTH},
        examples=["2 litres, semi-skimmed"],
    ),
]
Completed = Annotated[StrictBool, Field(description="Whether the task is done.", examples=[False])]


def _not_nullable(schema: dict[str, Any]) -> None:
    """Publish an optional-but-not-null field as its non-null type (omit it, never send null)."""
    variants = schema.pop("anyOf", None)
    if variants:
        schema.update(next(v for v in variants if v.get("type") != "null"))
    schema.pop("default", None)


class TaskCreate(TaskBase):
    """A new task. Unknown and read-only fields are ignored."""

    title: Title
    description: Description | None = None
    completed: Completed = False


class TaskUpdate(SQLModel):
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

    @field_validator("title", "completed")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only for values the client sent, so an omitted field stays "unchanged".
        if value is None:
            raise PydanticCustomError("null_not_allowed", "may not be null")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, with their new values."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class TaskCompletion(SQLModel):
    """Set the completion state explicitly (idempotent, safe to retry)."""

    completed: Completed


class TaskPublic(TaskBase):
    """A task as the API returns it. Timestamps are RFC 3339 in UTC with a `Z` suffix."""

    id: uuid.UUID = Field(
        description="Server-generated identifier.",
        examples=["0b3c7c5e-8f9a-4d2b-9a51-6f1f3e2d4c10"],
    )
    user_id: str = Field(description="The owner.", examples=["alice"])
    title: str = Field(examples=["Buy milk"])
    description: str | None = Field(examples=["2 litres, semi-skimmed"])
    completed: bool = Field(examples=[False])
    created_at: datetime = Field(
        description="When the task was created; never changes.",
        examples=["2026-11-26T09:30:00.123456Z"],
    )
    updated_at: datetime = Field(
        description="When the task last changed.", examples=["2026-11-26T09:45:12.654321Z"]
    )
