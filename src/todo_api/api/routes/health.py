"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import logging
import math
import time

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from todo_api.api import documented
from todo_api.api.deps import database_of
from todo_api.db.database import Database
from todo_api.errors import DatabaseUnavailable
from todo_api.http.responses import json_bytes

router = APIRouter(tags=["health"])

HEALTH_CHECK_TIMEOUT_S = 5.0
# How long the database's last answer (any statement's, or a check's own) makes it ready.
HEALTH_CHECK_FRESH_S = 1.0

logger = logging.getLogger(__name__)


class ReadinessCheck:
    """The database check behind `/health`, shared by its callers. The database is ready when
    it answered within `fresh_for` seconds: a statement of any request, or this check's own
    `SELECT 1`, which runs only when nothing else did and which concurrent callers wait on
    together. A flood of probes therefore costs no query while requests are served, at most
    one a second otherwise and one check at a time while the database does not answer, and
    no connection a request would not have used. A failure is not kept: the first probe after
    it checks again, so recovery shows at once."""

    def __init__(
        self,
        *,
        fresh_for: float = HEALTH_CHECK_FRESH_S,
        timeout: float = HEALTH_CHECK_TIMEOUT_S,
    ) -> None:
        self._fresh_for = fresh_for
        self._timeout = timeout
        self._ready_at = -math.inf
        self._running: asyncio.Future[bool] | None = None

    async def ready(self, database: Database) -> bool:
        """Whether the database answers: it did within `fresh_for`, or it does to a `SELECT 1`
        (retried once on a fresh connection)."""
        if time.monotonic() - max(self._ready_at, database.answered_at) < self._fresh_for:
            return True
        if self._running is None:
            self._running = asyncio.ensure_future(self._check(database))
        # A caller that goes away does not cancel the check the others wait on.
        return await asyncio.shield(self._running)

    async def _check(self, database: Database) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await database.ping()
        except TimeoutError:
            logger.warning(
                "database unavailable: TimeoutError (no answer to /health in %g s)", self._timeout
            )
            return False
        except DatabaseUnavailable:
            return False  # logged where it was raised, with the driver's error type
        finally:
            self._running = None
        self._ready_at = time.monotonic()
        return True


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
    readiness: ReadinessCheck = request.app.state.readiness
    if not await readiness.ready(database_of(request)):
        raise DatabaseUnavailable()
    return Response(json_bytes({"status": "ok", "database": "ok"}), media_type="application/json")


@router.get(
    "/health/live", response_model=Health, responses=documented.INTERNAL, summary="Liveness"
)
async def live() -> Response:
    """200 while the process runs; touches nothing else."""
    return Response(json_bytes({"status": "ok"}), media_type="application/json")
