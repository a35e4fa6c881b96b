"""The error responses each operation declares in OpenAPI, all as problem+json."""

from __future__ import annotations

from typing import Any

_PROBLEM = "application/problem+json"


def _problem(description: str, example: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            _PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}, "example": example}
        },
    }


def _example(status: int, type_: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": "/api/alice/tasks",
        "request_id": "9f1c2a4b6d8e4f00a1b2c3d4e5f60718",
        **extra,
    }


INVALID = _problem(
    "Invalid input: malformed JSON, a body or parameter that fails validation.",
    _example(
        400,
        "/problems/validation-error",
        "Invalid request",
        "1 field is invalid",
        errors=[
            {
                "field": "title",
                "message": "must be 1-200 characters after trimming",
                "type": "string_too_long",
            }
        ],
    ),
)
NOT_FOUND = _problem(
    "No such task for this user (also for another user's task or a non-UUID id).",
    _example(404, "/problems/not-found", "Not Found", "No task with this id exists for this user."),
)
UNSUPPORTED_MEDIA_TYPE = _problem(
    "The body is not `application/json`.",
    _example(
        415,
        "/problems/unsupported-media-type",
        "Unsupported media type",
        "The request body must be application/json.",
    ),
)
INTERNAL = _problem(
    "An unexpected error; the details are in the server log under the request id.",
    _example(
        500,
        "/problems/internal-server-error",
        "Internal Server Error",
        "An unexpected error occurred.",
    ),
)
UNAVAILABLE = {
    **_problem(
        "The database is unreachable or the connection pool is exhausted; retry later.",
        _example(
            503,
            "/problems/service-unavailable",
            "Service Unavailable",
            "The database is unreachable or busy; retry shortly.",
        ),
    ),
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer"},
        }
    },
}

UNAUTHORIZED = {
    **_problem(
        "The bearer token is missing, malformed, expired or not validly signed.",
        _example(
            401,
            "/problems/unauthorized",
            "Unauthorized",
            "The bearer token is not valid: token expired.",
        ),
    ),
    "headers": {
        "WWW-Authenticate": {
            "description": "The Bearer challenge (RFC 6750); `error` names a bad token.",
            "schema": {"type": "string"},
        }
    },
}
FORBIDDEN = _problem(
    "The token is valid but belongs to another user than the one in the path.",
    _example(
        403,
        "/problems/forbidden",
        "Forbidden",
        "The token does not grant access to this user's tasks.",
    ),
)
RATE_LIMITED = {
    **_problem(
        "The caller's request budget is spent.",
        _example(
            429,
            "/problems/rate-limited",
            "Too Many Requests",
            "The request budget is spent; retry after the time given.",
        ),
    ),
    "headers": {
        "Retry-After": {
            "description": "Seconds until the budget resets.",
            "schema": {"type": "integer"},
        },
        "RateLimit": {
            "description": "Remaining budget and seconds to reset (IETF draft).",
            "schema": {"type": "string"},
        },
        "RateLimit-Policy": {
            "description": "The quota and its window (IETF draft).",
            "schema": {"type": "string"},
        },
    },
}
AUTHENTICATED: dict[int | str, dict[str, Any]] = {401: UNAUTHORIZED, 403: FORBIDDEN}
LIMITED: dict[int | str, dict[str, Any]] = {429: RATE_LIMITED}

TOO_LARGE = _problem(
    "The request body is larger than MAX_BODY_SIZE.",
    _example(
        413,
        "/problems/content-too-large",
        "Content Too Large",
        "The request body is larger than 65536 bytes.",
    ),
)

COMMON: dict[int | str, dict[str, Any]] = {400: INVALID, 500: INTERNAL, 503: UNAVAILABLE}
WITH_TASK: dict[int | str, dict[str, Any]] = {**COMMON, 404: NOT_FOUND}
BODY: dict[int | str, dict[str, Any]] = {413: TOO_LARGE, 415: UNSUPPORTED_MEDIA_TYPE}
WITH_BODY: dict[int | str, dict[str, Any]] = {**WITH_TASK, **BODY}

ETAG_HEADER = {
    "description": 'The task\'s version as a strong entity tag, e.g. `"3"`: send it back in '
    "`If-Match` to change the task only if nobody else has, or in `If-None-Match` to read it "
    "only if it changed.",
    "schema": {"type": "string"},
}
TAGGED: dict[int | str, dict[str, Any]] = {
    200: {"description": "The task.", "headers": {"ETag": ETAG_HEADER}},
}
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {
        "description": "`If-None-Match` names the task's current ETag: no body.",
        "headers": {"ETag": ETAG_HEADER},
    },
}
CONDITIONAL: dict[int | str, dict[str, Any]] = {
    412: {
        **_problem(
            "`If-Match` names none of the task's current version: nothing was written. The "
            "`ETag` header carries the current one.",
            _example(
                412,
                "/problems/precondition-failed",
                "Precondition Failed",
                'The task has changed since that version was read; it is now at ETag "4". '
                "Read it again, then retry with the new ETag.",
            ),
        ),
        "headers": {"ETag": ETAG_HEADER},
    },
}
# `*`, or a comma-separated list of (weak or strong) entity tags; a bare token (`3`) is taken
# for the quoted tag (`"3"`) it stands for.
_TAG = '(W/)?("[!#-~]*"|[!#-+\\x2d-~]+)'
_LIST_OF_TAGS = f"^(\\*|{_TAG}( *, *{_TAG})*)$"
_ENTITY_TAGS_SCHEMA = {
    "type": "string",
    "pattern": _LIST_OF_TAGS,
    "examples": ['"3"'],
}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'Write only if the task is at one of these versions (`"3"`, or `*` for any). '
    "Without it the last write wins.",
    "schema": _ENTITY_TAGS_SCHEMA,
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "Answer 304 without a body if the task is still at one of these versions.",
    "schema": _ENTITY_TAGS_SCHEMA,
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A unique value per intended change (a UUID, say), repeated on every retry "
    "of it: the change is made once, and a retry gets its response again (with "
    "`Idempotent-Replayed: true`) for IDEMPOTENCY_KEY_TTL_HOURS (24 by default). 1-255 "
    'printable ASCII characters, quoted (`"..."`, a Structured Field string) or bare.',
    "schema": {
        "type": "string",
        # Quoted: any 1-255 printable characters inside; bare: no space at either end.
        "pattern": '^("[ -~]{1,255}"|[!-~]([ -~]{0,253}[!-~])?)$',
        "examples": ['"8e0f6b2c-4f0e-4a8a-9d0e-2b8c1d3f5a71"'],
    },
}
REPLAYED_HEADER = {
    "description": "`true` when this is the recorded response of an earlier request with the "
    "same `Idempotency-Key`.",
    "schema": {"type": "string", "enum": ["true"]},
}
IDEMPOTENT: dict[int | str, dict[str, Any]] = {
    409: {
        **_problem(
            "The first request with this `Idempotency-Key` is still being processed: retry "
            "shortly to get its response.",
            _example(
                409,
                "/problems/idempotency-key-in-use",
                "Conflict",
                "A request with this Idempotency-Key is still being processed; retry shortly to "
                "get its response.",
            ),
        ),
        "headers": {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        },
    },
    422: _problem(
        "This `Idempotency-Key` was already used for a different request: nothing was done.",
        _example(
            422,
            "/problems/idempotency-key-reused",
            "Unprocessable Content",
            "This Idempotency-Key was already used for a different request (another method, "
            "path or body); use a new key for a new request.",
        ),
    ),
}
SYNC_HORIZON_PASSED = _problem(
    "`updated_since` with `include_deleted` is older than the tombstone retention: start over "
    "with `include_deleted=true` and no `updated_since`, then sync from there.",
    _example(
        410,
        "/problems/sync-horizon-passed",
        "Gone",
        "Deleted tasks are remembered for 30 days; a sync from further back could miss "
        "deletions. Start over: list with include_deleted=true and no updated_since (oldest "
        "change first), follow every page, then sync from the last updated_at.",
    ),
)
# The task, as `/complete` answers it: possibly the recorded answer to an earlier request.
TAGGED_REPLAYABLE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The task.",
        "headers": {"ETag": ETAG_HEADER, "Idempotent-Replayed": REPLAYED_HEADER},
    },
}
