"""The one place that renders every error as RFC 9457 problem+json: the service's own
(`todo_api.errors`), the framework's (validation, routing) and unexpected ones."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, cast

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from todo_api.errors import (
    AppError,
    BodyTooLarge,
    DatabaseUnavailable,
    InternalError,
    InvalidParameter,
    UnsupportedMediaType,
)
from todo_api.observability.requestctx import current_request_id

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


# Set in the scope when a streamed body passes the limit: the framework reports the interrupted
# read as a generic 400, which the HTTP error handler turns back into this 413.
BODY_TOO_LARGE_KEY = "todo_api.body_too_large"


def body_too_large_response(path: str, limit: int) -> Response:
    return app_error_response(path, BodyTooLarge(limit))


def problem_body(
    path: str,
    *,
    status: int,
    type_: str,
    title: str,
    detail: str | None,
    errors: Sequence[Mapping[str, str]] | None = None,
    request_id: str | None,
) -> dict[str, Any]:
    """An RFC 9457 problem document, with the request's id and, for invalid input, `errors`."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": path,
        "request_id": request_id,
    }
    if errors is not None:
        body["errors"] = list(errors)
    return body


def problem_response(
    request_path: str,
    *,
    status: int,
    type_: str,
    title: str,
    detail: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = problem_body(
        request_path,
        status=status,
        type_=type_,
        title=title,
        detail=detail,
        errors=errors,
        request_id=current_request_id(),
    )
    return _problem(body, status, headers)


def _problem(body: Mapping[str, Any], status: int, headers: Mapping[str, str] | None) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_CONTENT_TYPE,
    )


def app_error_body(exc: AppError, path: str, request_id: str | None) -> dict[str, Any]:
    """The problem document of one of the service's errors."""
    return problem_body(
        path,
        status=exc.status,
        type_=exc.type,
        title=exc.title,
        detail=exc.detail,
        errors=exc.errors,
        request_id=request_id,
    )


def render_app_error(request: Request, exc: AppError) -> Response:
    return app_error_response(request.scope["path"], exc)


def app_error_response(path: str, exc: AppError) -> Response:
    body = app_error_body(exc, path, current_request_id())
    return _problem(body, exc.status, exc.headers)


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


def field_errors(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """pydantic's errors as the `errors` of a 400: each names its field, says what is wrong
    in words a client can act on, and gives the error's type."""
    return [
        {"field": _field_name(e), "message": _field_message(e), "type": str(e["type"])} for e in raw
    ]


def _is_json_request(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return bool(length and length != "0") or "transfer-encoding" in request.headers


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    raw = list(cast(RequestValidationError, exc).errors())
    body_errors = [e for e in raw if e["loc"] and e["loc"][0] == "body"]
    if body_errors and _has_body(request) and not _is_json_request(request):
        return render_app_error(request, UnsupportedMediaType())
    errors = field_errors(raw)
    count = len(errors)
    return problem_response(
        request.scope["path"],
        status=400,
        type_=InvalidParameter.type,
        title=InvalidParameter.title,
        detail=f"{count} field is invalid" if count == 1 else f"{count} fields are invalid",
        errors=errors,
    )


def _invalid_body(request: Request, message: str) -> Response:
    return problem_response(
        request.scope["path"],
        status=400,
        type_=InvalidParameter.type,
        title=InvalidParameter.title,
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
    phrase = _reason_phrase(status)
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


def _reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


_HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (the router reports only the first route's)."""
    routes = request.app.router.routes
    allowed = []
    for method in _HTTP_METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in routes):
            allowed.append(method)
    if "GET" in allowed and "HEAD" not in allowed:
        # Every GET route answers HEAD too (see `RequestMiddleware`).
        allowed.insert(allowed.index("GET") + 1, "HEAD")
    return allowed


async def handle_app_error(request: Request, exc: Exception) -> Response:
    return render_app_error(request, cast(AppError, exc))


def unexpected_error_response(path: str, exc: BaseException, *, outage: bool) -> Response:
    """The response for an exception no handler claimed: its own problem for one of ours, 503
    for an `outage` (a database fault that reached this far), else a 500 that says only that."""
    if isinstance(exc, AppError):
        return app_error_response(path, exc)
    if outage:
        logger.warning("database unavailable: %s", type(exc).__name__)
        return app_error_response(path, DatabaseUnavailable())
    logger.error("unhandled error", exc_info=exc)
    return app_error_response(path, InternalError())


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(AppError, handle_app_error)
