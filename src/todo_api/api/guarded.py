"""The route class of every `/api` route: the guard admits a request before FastAPI touches it."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from todo_api.api import documented
from todo_api.auth.guard import Guard

# Every refusal the guard can give, declared on each guarded route; the OpenAPI document leaves
# out those a configuration never sends (401 and 403 without authentication, 429 without a limit).
GUARD_RESPONSES: dict[int | str, dict[str, Any]] = {
    **documented.AUTHENTICATED,
    **documented.LIMITED,
}


class GuardedRoute(APIRoute):
    """A route whose requests pass the guard (token, owner, budget) first.

    The guard runs before FastAPI reads the body, validates a parameter or solves a dependency,
    so a refused request (401, 403, 429) costs none of that, and a body that is not even JSON is
    answered with the refusal rather than a 400. `create_app` refuses an `/api` route of any other
    class. The route documents the guard's refusals before its own responses.
    """

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        responses: dict[int | str, dict[str, Any]] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            path, endpoint, responses={**GUARD_RESPONSES, **(responses or {})}, **options
        )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def admitted(request: Request) -> Response:
            guard: Guard = request.app.state.guard
            await guard.admit(request)
            return await handle(request)

        return admitted
