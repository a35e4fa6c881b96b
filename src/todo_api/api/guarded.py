"""The route class of every `/api` route: the guard admits a request before FastAPI touches it."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from todo_api.auth.guard import Guard


class GuardedRoute(APIRoute):
    """A route whose requests pass the guard (token, owner, budget) first.

    The guard runs before FastAPI reads the body, validates a parameter or solves a dependency,
    so a refused request (401, 403, 429) costs none of that, and a body that is not even JSON is
    answered with the refusal rather than a 400. `create_app` refuses an `/api` route of any other
    class.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def admitted(request: Request) -> Response:
            guard: Guard = request.app.state.guard
            await guard.admit(request)
            return await handle(request)

        return admitted
