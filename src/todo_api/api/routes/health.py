"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from todo_api.api import documented
from todo_api.api.deps import database_of
from todo_api.errors import DatabaseUnavailable
from todo_api.http.responses import json_bytes

router = APIRouter(tags=["health"])

HEALTH_CHECK_TIMEOUT_S = 5.0


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    database: str | None = Field(default=None, examples=["ok"])


@router.get(
    "/health",
    response_model=Health,
    responses={**documented.INTERNAL, **documented.UNAVAILABLE},
    summary="Readiness",
)
async def health(request: Request) -> Response:
    """200 when the service can reach its database; 503 when it cannot."""
    database = database_of(request)
    try:
        async with asyncio.timeout(HEALTH_CHECK_TIMEOUT_S):
            await database.ping()
    except TimeoutError:
        raise DatabaseUnavailable() from None
    return Response(json_bytes({"status": "ok", "database": "ok"}), media_type="application/json")


@router.get(
    "/health/live", response_model=Health, responses=documented.INTERNAL, summary="Liveness"
)
async def live() -> Response:
    """200 while the process runs; touches nothing else."""
    return Response(json_bytes({"status": "ok"}), media_type="application/json")
