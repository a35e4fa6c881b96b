"""Pure ASGI middleware: request ids and the access log, CORS, the last-resort error handler.

Starlette's `BaseHTTPMiddleware` costs a task and a stream per request; these do not.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_api.errors import BodyTooLarge
from todo_api.http.problems import (
    BODY_TOO_LARGE_KEY,
    body_too_large_response,
    problem_response,
    unexpected_error_response,
)
from todo_api.observability.accesslog import log_access
from todo_api.observability.metrics import METRICS_PATH, Metrics
from todo_api.observability.requestctx import (
    RESPONSE_HEADERS_KEY,
    authenticated_user,
    reset_request_id,
    route_template,
    set_request_id,
)

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


# No MIME sniffing anywhere; API answers are per-user data that no cache may keep.
_COMMON_HEADERS = ((b"x-content-type-options", b"nosniff"),)
_API_HEADERS = (*_COMMON_HEADERS, (b"cache-control", b"no-store"))


class RequestContextMiddleware:
    """Accepts or generates `X-Request-ID`, echoes it and logs one access line per request.

    It also adds the response headers every answer carries, and those a dependency left in
    `scope["state"]` (the rate-limit headers), which a returned `Response` would otherwise drop,
    and with `metrics` counts the request (scrapes of `/metrics` aside).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope)
        token = set_request_id(request_id)
        header = (REQUEST_ID_HEADER, request_id.encode())
        is_api = scope["path"].startswith("/api/")
        common_headers = _API_HEADERS if is_api else _COMMON_HEADERS
        status = 500
        metrics = self.metrics if scope["path"] != METRICS_PATH else None
        if metrics is not None:
            metrics.in_flight.inc()
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), header, *common_headers]
                extra = scope.get("state", {}).get(RESPONSE_HEADERS_KEY)
                if extra:
                    headers.extend((k.lower().encode(), v.encode()) for k, v in extra.items())
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - began
            template = route_template(scope)
            if metrics is not None:
                metrics.in_flight.dec()
                metrics.observe_request(scope["method"], template, status, elapsed)
            # An unknown path has no template: it is logged as sent, escaped.
            log_access(
                request_id=request_id,
                method=scope["method"],
                route=template or _printable(scope.get("path", "")),
                status=status,
                duration_ms=elapsed * 1000,
                client=_client(scope),
                # Set once a token is verified (even if the request is then refused).
                user_id=authenticated_user(scope),
            )
            reset_request_id(token)


class UnhandledErrorMiddleware:
    """Turns an exception no handler claimed into a problem+json 500 (503 for database faults).

    It sits inside the CORS middleware, so a browser can read these errors too.
    """

    def __init__(self, app: ASGIApp, *, is_outage: Callable[[BaseException], bool]) -> None:
        self.app = app
        # Whether an exception means the database cannot serve (503), not a bug (500).
        self.is_outage = is_outage

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
            outage = self.is_outage(exc)
            response = unexpected_error_response(scope["path"], exc, outage=outage)
            await response(scope, receive, send)


_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class BodyLimitMiddleware:
    """Refuses request bodies over `max_body_size` bytes with 413, without reading them whole.

    A declared `Content-Length` over the limit is refused before the app runs; a chunked body is
    counted as it arrives and reading stops at the limit.
    """

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS_WITH_BODY:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_size:
            await body_too_large_response(scope["path"], self.max_body_size)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_size:
                    scope[BODY_TOO_LARGE_KEY] = self.max_body_size
                    raise BodyTooLarge(self.max_body_size)
            return message

        await self.app(scope, counting_receive, send)


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


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(text: str) -> str:
    """A raw path as a log may show it: control characters escaped, so no line can be forged."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


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
