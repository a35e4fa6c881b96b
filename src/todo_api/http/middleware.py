"""The service's own ASGI middleware: request ids and the access log, CORS, the last-resort
error handler and the body limit, in one pure ASGI class (Starlette's `BaseHTTPMiddleware`
costs a task and a stream per request; a stack of layers a call and a wrapped `send` each)."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence

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
    tool_call,
)

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


# No MIME sniffing anywhere; API answers are per-user data that no cache may keep.
_COMMON_HEADERS = ((b"x-content-type-options", b"nosniff"),)
_API_HEADERS = (*_COMMON_HEADERS, (b"cache-control", b"no-store"))


CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CORS_ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-Request-ID",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    # The MCP endpoint's (Streamable HTTP), for agents running in a browser.
    "Mcp-Protocol-Version",
    "Mcp-Session-Id",
    "Mcp-Method",
    "Mcp-Name",
    "Last-Event-ID",
)
CORS_EXPOSE_HEADERS = (
    "Location",
    "ETag",
    "Link",
    "Idempotent-Replayed",
    "X-Request-ID",
    "Retry-After",
    "WWW-Authenticate",
    "RateLimit",
    "RateLimit-Policy",
    "Mcp-Session-Id",
)
CORS_MAX_AGE_S = 600

_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_VARY_ORIGIN = (b"vary", b"Origin")


class RequestMiddleware:
    """The one layer around the application every HTTP request passes, in this order:

    1. its id: `X-Request-ID` accepted or generated, echoed, and current for the logs;
    2. CORS, through Starlette's `CORSMiddleware` for a request with an `Origin` (a refused
       preflight answered as problem+json); one without gets only `Vary: Origin`;
    3. the last-resort error handler: an exception no handler claimed becomes a problem+json 500
       (503 for database faults), inside CORS, so a browser can read it;
    4. the body limit: a body over `max_body_size` bytes is refused with 413 without being read
       whole (a declared `Content-Length` before the app runs, a chunked one as it arrives).

    When the response starts it adds the headers every answer carries, and those the guard left
    in `scope["state"]` (the rate-limit headers), which a returned `Response` would otherwise
    drop. When the request ends it writes the access line and, with `metrics`, counts the request
    (scrapes of `/metrics` aside).

    Written as one plain class rather than a stack of middleware: each layer of a stack costs
    every request a call, a closure and a wrapped `send`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        cors_origins: Sequence[str],
        max_body_size: int,
        is_outage: Callable[[BaseException], bool],
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.max_body_size = max_body_size
        # Whether an exception means the database cannot serve (503), not a bug (500).
        self.is_outage = is_outage
        self.metrics = metrics
        self.cors = CORSMiddleware(
            self._shielded,
            allow_origins=cors_origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
            max_age=CORS_MAX_AGE_S,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "HEAD":
            # HEAD is GET without the body (RFC 9110 §9.3.2): the same routes, guard and headers.
            # The server keeps its own scope, so it still knows not to expect a body.
            scope = {**scope, "method": "GET"}
        request_id, origin = _request_id_and_origin(scope["headers"])
        token = set_request_id(request_id)
        added = [
            (REQUEST_ID_HEADER, request_id.encode()),
            *(_API_HEADERS if _per_user(scope["path"]) else _COMMON_HEADERS),
        ]
        if origin is None:
            added.append(_VARY_ORIGIN)
        status = 500
        metrics = self.metrics if scope["path"] != METRICS_PATH else None
        if metrics is not None:
            metrics.in_flight.inc()
        began = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), *added]
                extra = scope.get("state", {}).get(RESPONSE_HEADERS_KEY)
                if extra:
                    headers.extend((k.lower().encode(), v.encode()) for k, v in extra.items())
                message["headers"] = headers
            elif method == "HEAD" and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            if origin is None:
                await self._shielded(scope, receive, send_with_headers)
            else:
                await self._cors(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - began
            template = route_template(scope)
            if metrics is not None:
                metrics.in_flight.dec()
                metrics.observe_request(method, template, status, elapsed)
            # An unknown path has no template: it is logged as sent, escaped.
            log_access(
                request_id=request_id,
                method=method,
                route=template or _printable(scope.get("path", "")),
                status=status,
                duration_ms=elapsed * 1000,
                client=_client(scope),
                # Set once a token is verified (even if the request is then refused).
                user_id=authenticated_user(scope),
                tool=tool_call(scope),
            )
            reset_request_id(token)

    async def _cors(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            response = self.cors.preflight_response(request_headers=headers)
            if response.status_code == 400:
                response = _refused_preflight(scope["path"], response)
            await response(scope, receive, send)
            return
        await self.cors.simple_response(scope, receive, send, request_headers=headers)

    async def _shielded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The application behind the body limit and the last-resort error handler."""
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            if scope["method"] in _METHODS_WITH_BODY:
                await self._limited(scope, receive, tracking_send)
            else:
                await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                logger.error("error after the response started", exc_info=exc)
                return
            outage = self.is_outage(exc)
            response = unexpected_error_response(scope["path"], exc, outage=outage)
            await response(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
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


def _per_user(path: str) -> bool:
    """Whether the path answers with a user's data (the API's and the MCP endpoint's)."""
    return path.startswith("/api/") or path == "/mcp"


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


def _request_id_and_origin(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, bytes | None]:
    """The request's id (its own `X-Request-ID` if valid, else a new one) and its `Origin`."""
    request_id: str | None = None
    seen_id = False
    origin: bytes | None = None
    for name, value in headers:
        if name == REQUEST_ID_HEADER and not seen_id:
            # Only the first counts; an invalid one is replaced, not passed over.
            seen_id = True
            if _VALID_REQUEST_ID.match(value):
                request_id = value.decode()
        elif name == b"origin" and origin is None:
            origin = value
    # 128 random bits in hex, as a UUID's hex would read, without building a UUID object.
    return request_id or os.urandom(16).hex(), origin


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    if not client:
        return None
    # A forwarded address (X-Forwarded-For from a trusted proxy) comes without a port: port 0.
    return f"{client[0]}:{client[1]}" if client[1] else str(client[0])
