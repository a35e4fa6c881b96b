"""Domain errors and the one place that renders every error as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, cast

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from todo_api.http.etags import entity_tag
from todo_api.observability.requestctx import current_request_id

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
# Set by the guard once it has looked at a request; requests under the prefix are guarded.
GUARD_RAN_KEY = "todo_api.guarded"
GUARDED_PREFIX = "/api/"
DB_RETRY_AFTER_SECONDS = 5


class AppError(Exception):
    """Base of every error the service raises on purpose."""

    status: int = 500
    type: str = "/problems/internal-server-error"
    title: str = "Internal Server Error"

    def __init__(
        self, detail: str | None = None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = dict(headers or {})
        self.errors: list[dict[str, str]] | None = None


class InvalidParameter(AppError):
    """A request value the service itself found invalid: the same 400 as a validation failure."""

    status = 400
    type = "/problems/validation-error"
    title = "Invalid request"

    def __init__(self, field: str, message: str, *, type_: str) -> None:
        super().__init__("1 field is invalid")
        self.errors = [{"field": field, "message": message, "type": type_}]


class NotFound(AppError):
    status = 404
    type = "/problems/not-found"
    title = "Not Found"


class TaskNotFound(NotFound):
    def __init__(self) -> None:
        # Always the same text: nothing may reveal whether the id exists for another user.
        super().__init__("No task with this id exists for this user.")


class PreconditionFailed(AppError):
    """A conditional write (`If-Match`) found the task at another version; nothing was written."""

    status = 412
    type = "/problems/precondition-failed"
    title = "Precondition Failed"

    def __init__(self, current_version: int) -> None:
        etag = entity_tag(current_version)
        super().__init__(
            f"The task has changed since that version was read; it is now at ETag {etag}. "
            "Read it again, then retry with the new ETag.",
            headers={"ETag": etag},
        )
        self.current_version = current_version


class IdempotencyKeyInUse(AppError):
    """The first request with this Idempotency-Key is still being processed."""

    status = 409
    type = "/problems/idempotency-key-in-use"
    title = "Conflict"

    def __init__(self) -> None:
        super().__init__(
            "A request with this Idempotency-Key is still being processed; retry shortly to "
            "get its response.",
            headers={"Retry-After": "1"},
        )


class IdempotencyKeyReused(AppError):
    """This Idempotency-Key was already used for a different request."""

    status = 422
    type = "/problems/idempotency-key-reused"
    title = "Unprocessable Content"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used for a different request (another method, "
            "path or body); use a new key for a new request."
        )


class SyncHorizonPassed(AppError):
    """A sync from before the tombstone retention: deletions since then may be forgotten."""

    status = 410
    type = "/problems/sync-horizon-passed"
    title = "Gone"

    def __init__(self, retention_days: float) -> None:
        super().__init__(
            f"Deleted tasks are remembered for {retention_days:g} days; a sync from further "
            "back could miss deletions. Start over: list with include_deleted=true and no "
            "updated_since (oldest change first), follow every page, then sync from the last "
            "updated_at."
        )


class ServiceUnavailable(AppError):
    status = 503
    type = "/problems/service-unavailable"
    title = "Service Unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": str(DB_RETRY_AFTER_SECONDS)})


class BodyTooLarge(AppError):
    status = 413
    type = "/problems/content-too-large"
    title = "Content Too Large"


# Set in the scope when a streamed body passes the limit: the framework reports the interrupted
# read as a generic 400, which the HTTP error handler turns back into this 413.
BODY_TOO_LARGE_KEY = "todo_api.body_too_large"


def body_too_large_response(path: str, limit: int) -> Response:
    return app_error_response(path, BodyTooLarge(f"The request body is larger than {limit} bytes."))


class DatabaseUnavailable(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__("The database is unreachable or busy; retry shortly.")


def problem_response(
    request_path: str,
    *,
    status: int,
    type_: str,
    title: str,
    detail: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request_path,
        "request_id": current_request_id(),
    }
    if errors is not None:
        body["errors"] = list(errors)
    if extra:
        body.update(extra)
    return Response(
        orjson.dumps(body),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_CONTENT_TYPE,
    )


def render_app_error(request: Request, exc: AppError) -> Response:
    return app_error_response(request.scope["path"], exc)


def app_error_response(path: str, exc: AppError) -> Response:
    return problem_response(
        path,
        status=exc.status,
        type_=exc.type,
        title=exc.title,
        detail=exc.detail,
        errors=exc.errors,
        headers=exc.headers,
    )


_DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sa_exc.TimeoutError,  # pool exhausted for DB_POOL_TIMEOUT
    sa_exc.OperationalError,  # SQLite cannot open/lock, or a connection-level failure
    sa_exc.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.QueryCanceledError,  # statement timeout
    ConnectionError,
    TimeoutError,
)


def _unavailable_sqlstate(sqlstate: object) -> bool:
    """Connection failures (class 08), refused logins (class 28), a missing database (3D000),
    too many connections, shutdown, and cancelled queries."""
    if not isinstance(sqlstate, str):
        return False
    return sqlstate.startswith(("08", "28")) or sqlstate in {
        "3D000",
        "53300",
        "57014",
        "57P01",
        "57P02",
        "57P03",
    }


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot serve us right now (as opposed to a bug)."""
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        # SQLAlchemy wraps the driver's exception; asyncpg's own sits behind the wrapper.
        for driver_error in (exc.orig, getattr(exc.orig, "__cause__", None)):
            if isinstance(driver_error, _DATABASE_UNAVAILABLE):
                return True
            if _unavailable_sqlstate(getattr(driver_error, "sqlstate", None)):
                return True
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError):
        return True
    if _unavailable_sqlstate(getattr(exc, "sqlstate", None)):
        return True  # a driver error raised directly (the PostgreSQL fast path)
    return isinstance(exc, _DATABASE_UNAVAILABLE)


def _field_name(error: Mapping[str, Any]) -> str:
    if error["type"] == "json_invalid":
        return "body"
    loc = [str(part) for part in error["loc"]]
    if len(loc) > 1 and loc[0] == "query":
        # A repeated query parameter is named, not indexed: `priority`, not `priority.1`.
        return loc[1]
    if loc and loc[0] in {"body", "query", "path", "header", "cookie"}:
        loc = loc[1:]
    return ".".join(loc) or "body"


def _field_message(error: Mapping[str, Any]) -> str:
    if error["type"] == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return f"malformed JSON: {reason}" if reason else "malformed JSON"
    if error["type"] in {"model_type", "model_attributes_type", "dict_type"}:
        return "must be a JSON object"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _is_json_request(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return bool(length and length != "0") or "transfer-encoding" in request.headers


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    # A body that is not even JSON is rejected before the route's guard runs; the caller must
    # still learn first that it is unauthenticated, forbidden or over budget.
    guard = getattr(request.app.state, "guard", None)
    if guard is not None and GUARD_RAN_KEY not in request.scope:
        if request.scope["path"].startswith(GUARDED_PREFIX):
            try:
                await guard.admit(request)
            except AppError as refusal:
                return render_app_error(request, refusal)
    raw = list(cast(RequestValidationError, exc).errors())
    body_errors = [e for e in raw if e["loc"] and e["loc"][0] == "body"]
    if body_errors and _has_body(request) and not _is_json_request(request):
        return problem_response(
            request.scope["path"],
            status=415,
            type_="/problems/unsupported-media-type",
            title="Unsupported media type",
            detail="The request body must be application/json.",
            headers={"Accept": "application/json"},
        )
    errors = [
        {"field": _field_name(e), "message": _field_message(e), "type": str(e["type"])} for e in raw
    ]
    count = len(errors)
    return problem_response(
        request.scope["path"],
        status=400,
        type_="/problems/validation-error",
        title="Invalid request",
        detail=f"{count} field is invalid" if count == 1 else f"{count} fields are invalid",
        errors=errors,
    )


def _invalid_body(request: Request, message: str) -> Response:
    return problem_response(
        request.scope["path"],
        status=400,
        type_="/problems/validation-error",
        title="Invalid request",
        detail="1 field is invalid",
        errors=[{"field": "body", "message": message, "type": "json_invalid"}],
    )


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    exc = cast(StarletteHTTPException, exc)
    if BODY_TOO_LARGE_KEY in request.scope:
        return body_too_large_response(request.scope["path"], request.scope[BODY_TOO_LARGE_KEY])
    if exc.status_code == 400 and exc.__cause__ is not None:
        # The framework could not read the body at all (not UTF-8, nested too deeply, ...).
        return _invalid_body(request, "the body is not valid JSON text")
    status = exc.status_code
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    if status == 404 and detail is None:
        detail = "No resource lives at this path."
    headers = dict(exc.headers or {})
    if status == 405:
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        detail = detail or f"{request.method} is not allowed here; use {' or '.join(allowed)}."
    return problem_response(
        request.scope["path"],
        status=status,
        type_=f"/problems/{phrase.lower().replace(' ', '-')}",
        title=phrase,
        detail=detail,
        headers=headers,
    )


_HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (the router reports only the first route's)."""
    routes = request.app.router.routes
    allowed = []
    for method in _HTTP_METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in routes):
            allowed.append(method)
    return allowed


async def handle_app_error(request: Request, exc: Exception) -> Response:
    return render_app_error(request, cast(AppError, exc))


def unexpected_error_response(path: str, exc: BaseException) -> Response:
    """The response for an exception no handler claimed: 503 for database faults, else 500."""
    if isinstance(exc, AppError):
        return app_error_response(path, exc)
    if is_database_unavailable(exc):
        logger.warning("database unavailable: %s", type(exc).__name__)
        return app_error_response(path, DatabaseUnavailable())
    logger.error("unhandled error", exc_info=exc)
    return problem_response(
        path,
        status=500,
        type_=AppError.type,
        title=AppError.title,
        detail="An unexpected error occurred; it has been logged with this request id.",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(AppError, handle_app_error)
