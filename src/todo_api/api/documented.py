"""What each operation declares in OpenAPI beyond its parameters and body: its error responses
(generated from the error classes, all problem+json), its headers and its conditional and
idempotency parameters."""

from __future__ import annotations

from typing import Any

from todo_api.errors import (
    ETAG_DESCRIPTION,
    BodyTooLarge,
    Forbidden,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InternalError,
    InvalidParameter,
    PreconditionFailed,
    RateLimited,
    ServiceUnavailable,
    SyncHorizonPassed,
    TaskNotFound,
    Unauthorized,
    UnsupportedMediaType,
)
from todo_api.http.etags import ENTITY_TAGS_PATTERN, MAX_HEADER_LENGTH
from todo_api.http.openapi import OpenAPIResponses, problem_responses

COMMON = problem_responses(InvalidParameter, InternalError, ServiceUnavailable)
WITH_TASK: OpenAPIResponses = {**COMMON, **problem_responses(TaskNotFound)}
BODY = problem_responses(BodyTooLarge, UnsupportedMediaType)
WITH_BODY: OpenAPIResponses = {**WITH_TASK, **BODY}
AUTHENTICATED = problem_responses(Unauthorized, Forbidden)
LIMITED = problem_responses(RateLimited)
CONDITIONAL = problem_responses(PreconditionFailed)
IDEMPOTENT = problem_responses(IdempotencyKeyInUse, IdempotencyKeyReused)
SYNC_HORIZON_PASSED = problem_responses(SyncHorizonPassed)
INTERNAL = problem_responses(InternalError)
UNAVAILABLE = problem_responses(ServiceUnavailable)

ETAG_HEADER = {"description": ETAG_DESCRIPTION, "schema": {"type": "string"}}
TAGGED: dict[int | str, dict[str, Any]] = {
    200: {"description": "The task.", "headers": {"ETag": ETAG_HEADER}},
}
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {
        "description": "`If-None-Match` names the task's current ETag: no body.",
        "headers": {"ETag": ETAG_HEADER},
    },
}
_ENTITY_TAGS_SCHEMA = {
    "type": "string",
    "pattern": ENTITY_TAGS_PATTERN,
    "maxLength": MAX_HEADER_LENGTH,
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
# The task, as `/complete` answers it: possibly the recorded answer to an earlier request.
TAGGED_REPLAYABLE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The task.",
        "headers": {"ETag": ETAG_HEADER, "Idempotent-Replayed": REPLAYED_HEADER},
    },
}
