"""Dependency aliases for the routes."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from todo_api.core.db import Database
from todo_api.core.guard import Guard
from todo_api.models.task import USER_ID_MAX_LENGTH

USER_ID_PATTERN = f"^[!-.0-~]{{1,{USER_ID_MAX_LENGTH}}}$"


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="A JWT from the identity provider (or `todo-api token USER_ID` in development).",
)


async def authorize(request: Request) -> str | None:
    """Admit the request (token, owner, budget); the authenticated user id, or None when open."""
    guard: Guard = request.app.state.guard
    return await guard.admit(request)


async def authorize_bearer(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> str | None:
    """`authorize`, declared in OpenAPI as needing a bearer token."""
    return await authorize(request)


DatabaseDep = Annotated[Database, Depends(get_database)]

_user_id = re.compile(USER_ID_PATTERN)


def _check_user_id(value: str) -> str:
    if not _user_id.fullmatch(value):
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
