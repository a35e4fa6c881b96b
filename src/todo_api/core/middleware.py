"""Pure ASGI middleware: request ids, the access log line and the last-resort error handler.

Starlette's `BaseHTTPMiddleware` costs a task and a stream per request; these do not.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_api.core.errors import unexpected_error_response
from todo_api.core.requestctx import reset_request_id, set_request_id

access_logger = logging.getLogger("todo_api.access")
logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContextMiddleware:
    """Accepts or generates `X-Request-ID`, echoes it, logs one access line per request and
    turns an exception no handler claimed into a problem+json 500 (or 503 for database faults)."""

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
        started = False
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                logger.error("error after the response started", exc_info=exc)
            else:
                response = unexpected_error_response(scope.get("path", ""), exc)
                await response(scope, receive, send_with_id)
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
