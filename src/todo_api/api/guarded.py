"""The route class of every `/api` route: the guard admits a request before FastAPI touches it."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from todo_api.api import documented
from todo_api.api.binding import Binder
from todo_api.auth.guard import Guard

# What FastAPI's request handler expects its ASGI wrappers to have put in the scope.
_FRAMEWORK_EXIT_STACKS = (
    "fastapi_middleware_astack",
    "fastapi_inner_astack",
    "fastapi_function_astack",
)

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
    answered with the refusal rather than a 400. Then the route's `Binder` reads the endpoint's
    arguments; a request it leaves alone (one that fails validation, or sends what only FastAPI
    reads) goes through FastAPI's own handler, which answers or refuses it as always.
    `create_app` refuses an `/api` route of any other class. The route documents the guard's
    refusals before its own responses.

    `answer(request)` is the whole of it, for `api.dispatch` to call without the framework's
    routing layers; FastAPI's router calls the same function.
    """

    answer: Callable[[Request], Coroutine[Any, Any, Response]]

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
        framework = super().get_route_handler()
        endpoint = self.dependant.call
        binder = Binder.for_route(self) if inspect.iscoroutinefunction(endpoint) else None
        path = self.path

        async def answer(request: Request) -> Response:
            guard: Guard = request.app.state.guard
            await guard.admit(request)
            if binder is not None:
                arguments = await binder.bind(request)
                if arguments is not None:
                    response = await endpoint(**arguments)  # type: ignore[misc]
                    if not isinstance(response, Response):
                        raise TypeError(f"{path}: an /api endpoint returns a Response")
                    return response
            return await _through_framework(framework, request)

        self.answer = answer
        return answer


async def _through_framework(
    handler: Callable[[Request], Coroutine[Any, Any, Response]], request: Request
) -> Response:
    """FastAPI's handler, given the exit stacks its routing layers would have opened (none were
    when `api.dispatch` routed the request). Nothing here registers a callback on them: no
    dependency yields, no body is a form."""
    scope = request.scope
    if all(key in scope for key in _FRAMEWORK_EXIT_STACKS):
        return await handler(request)
    async with AsyncExitStack() as stack:
        for key in _FRAMEWORK_EXIT_STACKS:
            scope.setdefault(key, stack)
        return await handler(request)
