"""Dependency aliases for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from todo_api.db.database import Database
from todo_api.users import USER_ID_MAX_LENGTH, USER_ID_PATTERN, is_valid_user_id


def database_of(request: Request) -> Database:
    """The process's database. Read off the app rather than declared as a dependency: a
    dependency is a second round of FastAPI's parameter solving on every request."""
    database: Database = request.app.state.database
    return database


def _check_user_id(value: str) -> str:
    if not is_valid_user_id(value):
        raise PydanticCustomError(
            "invalid_user_id",
            f"must be 1-{USER_ID_MAX_LENGTH} printable ASCII characters without spaces or '/'",
        )
    return value


UserID = Annotated[
    str,
    AfterValidator(_check_user_id),
    Path(
        description="The owner of the tasks: 1-255 printable ASCII characters, no space or `/`.",
        examples=["alice"],
        json_schema_extra={"pattern": USER_ID_PATTERN},
    ),
]
TaskID = Annotated[
    str,
    Path(
        description="The task's id (a UUID). Any other value is simply not found.",
        examples=["0b3c7c5e-8f9a-4d2b-9a51-6f1f3e2d4c10"],
        json_schema_extra={"format": "uuid"},
    ),
]
