"""`/api` requests go straight to their route, past the framework's routing layers.

Between the service's middleware and a route, FastAPI and Starlette put an exception layer, an
exit-stack layer, the router, the route's own ASGI wrapper, another exception wrapper and two more
exit stacks: each a call, a closure or a wrapped `send` on every request, together more than
the work of reading a task. An `/api` route is a `GuardedRoute`, whose `answer(request)` does all
of a request's work, so `ApiDispatch` matches the path against those routes itself, in the
router's order, calls `answer`, renders what it raises with the application's exception
handlers, and sends the response. Every other request (another path, a method no route takes,
an unknown path under `/api/`) goes on through the framework's stack, which answers it as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, cast

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from todo_api.api.guarded import GuardedRoute
from todo_api.observability.requestctx import GUARDED_PREFIX

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class ApiDispatch:
    """Answers the requests of `/api` routes; passes every other request to `rest`."""

    def __init__(
        self,
        routes: Iterable[BaseRoute],
        rest: ASGIApp,
        *,
        router: Any,
        exception_handlers: Mapping[Any, Callable[..., Any]],
    ) -> None:
        self.routes = [route for route in routes if isinstance(route, GuardedRoute)]
        self.rest = rest
        self.router = router
        for handler in exception_handlers.values():
            if not inspect.iscoroutinefunction(handler):
                raise TypeError(f"exception handler {handler!r} is not a coroutine function")
        # Looked up as Starlette does: an HTTPException by its status first, then by class.
        handlers = cast(Mapping[Any, ExceptionHandler], exception_handlers)
        self.by_status = {k: v for k, v in handlers.items() if isinstance(k, int)}
        self.by_class = {k: v for k, v in handlers.items() if isinstance(k, type)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(GUARDED_PREFIX):
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    scope.setdefault("router", self.router)
                    await self._answer(route, scope, receive, send)
                    return
        await self.rest(scope, receive, send)

    async def _answer(
        self, route: GuardedRoute, scope: Scope, receive: Receive, send: Send
    ) -> None:
        request = Request(scope, receive)
        try:
            response = await route.answer(request)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> ExceptionHandler | None:
        if isinstance(exc, HTTPException) and exc.status_code in self.by_status:
            return self.by_status[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in self.by_class:
                return self.by_class[cls]
        return None
