"""Pure ASGI middleware: request ids and the access log, CORS, the last-resort error handler.

Starlette's `BaseHTTPMiddleware` costs a task and a stream per request; these do not.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_api.core.errors import problem_response, unexpected_error_response
from todo_api.core.requestctx import reset_request_id, set_request_id

access_logger = logging.getLogger("todo_api.access")
logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContextMiddleware:
    """Accepts or generates `X-Request-ID`, echoes it and logs one access line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope)
        token = set_request_id(request_id)
        header = (REQUEST_ID_HEADER, request_id.encode())
        status = 500
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration_ms = (time.perf_counter() - began) * 1000
            route = scope.get("route")
            path = getattr(route, "path", None) or scope.get("path", "")
            access_logger.info(
                "%s %s %d %.1fms",
                scope["method"],
                path,
                status,
                duration_ms,
                extra={
                    "http_method": scope["method"],
                    "route": path,
                    "status": status,
                    "duration_ms": round(duration_ms, 2),
                    "client": _client(scope),
                },
            )
            reset_request_id(token)


class UnhandledErrorMiddleware:
    """Turns an exception no handler claimed into a problem+json 500 (503 for database faults).

    It sits inside the CORS middleware, so a browser can read these errors too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                logger.error("error after the response started", exc_info=exc)
                return
            response = unexpected_error_response(scope["path"], exc)
            await response(scope, receive, send)


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS handling, with a refused preflight answered as problem+json."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                response = self.preflight_response(request_headers=headers)
                if response.status_code == 400:
                    response = _refused_preflight(scope["path"], response)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _refused_preflight(path: str, refusal: Response) -> Response:
    kept = {
        name: value
        for name, value in refusal.headers.items()
        if name.lower().startswith("access-control-") or name.lower() == "vary"
    }
    return problem_response(
        path,
        status=400,
        type_="/problems/cors-refused",
        title="CORS request refused",
        detail=bytes(refusal.body).decode(),
        headers=kept,
    )


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            if _VALID_REQUEST_ID.match(value):
                request_id: str = value.decode()
                return request_id
            break
    return uuid.uuid4().hex


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else None
