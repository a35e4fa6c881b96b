"""Every error the service raises on purpose, as one hierarchy.

Each class is the one source of its problem: the status, the problem type and title, the text a
client reads, and what the OpenAPI document says of it (`description`, the headers it carries,
and an example built from the class itself). `http.problems` renders them as RFC 9457
problem+json; `http.openapi` documents them. Services, the guard and the database raise them
without knowing about HTTP beyond the status they stand for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal, TypeAlias

# Headers a problem carries, as the OpenAPI document names them: name -> (JSON type, text).
HeaderDocs: TypeAlias = Mapping[str, tuple[str, str]]

# Seconds a client is asked to wait before retrying when the database is unavailable.
DB_RETRY_AFTER_SECONDS = 5
REALM = "todo-api"

ETAG_DESCRIPTION = (
    'The task\'s version as a strong entity tag, e.g. `"3"`: send it back in `If-Match` to '
    "change the task only if nobody else has, or in `If-None-Match` to read it only if it "
    "changed."
)


def entity_tag(version: int) -> str:
    """A task version as the strong entity tag (RFC 9110 §8.8.3) the service writes: `"7"`."""
    return f'"{version}"'


class AppError(Exception):
    """Base of every error the service raises on purpose; as it stands, an unexpected one."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "/problems/internal-server-error"
    title: ClassVar[str] = "Internal Server Error"
    # What the OpenAPI document says of this response, and of the headers it carries
    # (name: (JSON type, description)).
    description: ClassVar[str] = (
        "An unexpected error; the details are in the server log under the request id."
    )
    documented_headers: ClassVar[HeaderDocs] = {}

    def __init__(
        self, detail: str | None = None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = dict(headers or {})
        self.errors: list[dict[str, str]] | None = None

    @classmethod
    def example(cls) -> AppError:
        """An instance as the OpenAPI document shows it."""
        return cls()


class InternalError(AppError):
    """What a client learns of an unexpected error: only that it happened."""

    def __init__(self) -> None:
        super().__init__("An unexpected error occurred; it has been logged with this request id.")


class InvalidParameter(AppError):
    """A request value that fails validation: 400 with `errors` naming each field."""

    status = 400
    type = "/problems/validation-error"
    title = "Invalid request"
    description = "Invalid input: malformed JSON, a body or parameter that fails validation."

    def __init__(self, field: str, message: str, *, type_: str) -> None:
        super().__init__("1 field is invalid")
        self.errors = [{"field": field, "message": message, "type": type_}]

    @classmethod
    def example(cls) -> AppError:
        return cls("title", "must be 1-200 characters after trimming", type_="string_too_long")


class RepeatedCredentials(InvalidParameter):
    """More than one `Authorization` header: 400 `invalid_request` (RFC 6750 §3.1). Which one
    counts would be a guess, and a proxy that guessed otherwise would see another caller."""

    def __init__(self) -> None:
        super().__init__("Authorization", "must be sent once", type_="repeated_header")
        self.headers = {"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_request"'}


class UnsupportedMediaType(AppError):
    status = 415
    type = "/problems/unsupported-media-type"
    title = "Unsupported media type"
    description = "The body is not `application/json`."

    def __init__(self) -> None:
        super().__init__(
            "The request body must be application/json.", headers={"Accept": "application/json"}
        )


class BodyTooLarge(AppError):
    status = 413
    type = "/problems/content-too-large"
    title = "Content Too Large"
    description = "The request body is larger than MAX_BODY_SIZE."

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes.")
        self.limit = limit

    @classmethod
    def example(cls) -> AppError:
        return cls(65536)


class NotFound(AppError):
    status = 404
    type = "/problems/not-found"
    title = "Not Found"


class TaskNotFound(NotFound):
    description = "No such task for this user (also for another user's task or a non-UUID id)."

    def __init__(self) -> None:
        # Always the same text: nothing may reveal whether the id exists for another user.
        super().__init__("No task with this id exists for this user.")


class PreconditionFailed(AppError):
    """A conditional write (`If-Match`) found the task at another version; nothing was written."""

    status = 412
    type = "/problems/precondition-failed"
    title = "Precondition Failed"
    description = (
        "`If-Match` names none of the task's current version: nothing was written. The `ETag` "
        "header carries the current one."
    )
    documented_headers: ClassVar[HeaderDocs] = {"ETag": ("string", ETAG_DESCRIPTION)}

    def __init__(self, current_version: int) -> None:
        etag = entity_tag(current_version)
        super().__init__(
            f"The task has changed since that version was read; it is now at ETag {etag}. "
            "Read it again, then retry with the new ETag.",
            headers={"ETag": etag},
        )
        self.current_version = current_version

    @classmethod
    def example(cls) -> AppError:
        return cls(4)


class IdempotencyKeyInUse(AppError):
    """The first request with this Idempotency-Key is still being processed."""

    status = 409
    type = "/problems/idempotency-key-in-use"
    title = "Conflict"
    description = (
        "The first request with this `Idempotency-Key` is still being processed: retry shortly "
        "to get its response."
    )
    documented_headers: ClassVar[HeaderDocs] = {"Retry-After": ("integer", "Seconds to wait.")}

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
    description = (
        "This `Idempotency-Key` was already used for a different request: nothing was done."
    )

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
    description = (
        "`updated_since` with `include_deleted` is older than the tombstone retention: start "
        "over with `include_deleted=true` and no `updated_since`, then sync from there."
    )

    def __init__(self, retention_days: float) -> None:
        super().__init__(
            f"Deleted tasks are remembered for {retention_days:g} days; a sync from further "
            "back could miss deletions. Start over: list with include_deleted=true and no "
            "updated_since (oldest change first), follow every page, then sync from the last "
            "updated_at."
        )

    @classmethod
    def example(cls) -> AppError:
        return cls(30)


class ServiceUnavailable(AppError):
    status = 503
    type = "/problems/service-unavailable"
    title = "Service Unavailable"
    description = "The database is unreachable or the connection pool is exhausted; retry later."
    documented_headers: ClassVar[HeaderDocs] = {
        "Retry-After": ("integer", "Seconds to wait before retrying.")
    }

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": str(DB_RETRY_AFTER_SECONDS)})

    @classmethod
    def example(cls) -> AppError:
        return DatabaseUnavailable()


class DatabaseUnavailable(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__("The database is unreachable or busy; retry shortly.")


class IdentityProviderUnavailable(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__("The identity provider's keys cannot be fetched; retry shortly.")


# Why a request was refused, as the metrics count it: a fixed word, never anything from the token.
AuthFailure = Literal[
    "missing",
    "repeated_header",
    "malformed_header",
    "malformed",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "wrong_issuer",
    "missing_claim",
    "bad_signature",
    "invalid_user_id",
    "algorithm_not_accepted",
    "unknown_key",
    "lifetime_too_long",
    "user_mismatch",
]


class Unauthorized(AppError):
    """No usable credentials: 401 with a `WWW-Authenticate` challenge (RFC 6750)."""

    status = 401
    type = "/problems/unauthorized"
    title = "Unauthorized"
    description = "The bearer token is missing, malformed, expired or not validly signed."
    documented_headers: ClassVar[HeaderDocs] = {
        "WWW-Authenticate": (
            "string",
            "The Bearer challenge (RFC 6750); `error` names a bad token.",
        )
    }

    def __init__(self, why: str | None = None, *, reason: AuthFailure = "missing") -> None:
        """`why`: the precise cause, for the log only; a client learns no more than whether
        its token expired (which says to get a new one), so a prober cannot tell which check
        failed. None: no credentials were sent at all."""
        self.reason = reason
        self.why = why
        challenge = f'Bearer realm="{REALM}"'
        description = None
        if why is not None:
            description = "token expired" if reason == "expired" else "invalid token"
            challenge += f', error="invalid_token", error_description="{description}"'
        detail = f"The bearer token is not valid: {description}." if description else None
        super().__init__(
            detail or "This endpoint needs an `Authorization: Bearer <token>` header.",
            headers={"WWW-Authenticate": challenge},
        )

    @classmethod
    def example(cls) -> AppError:
        return cls("token expired", reason="expired")


class Forbidden(AppError):
    status = 403
    type = "/problems/forbidden"
    title = "Forbidden"
    description = "The token is valid but belongs to another user than the one in the path."

    def __init__(self) -> None:
        super().__init__("The token does not grant access to this user's tasks.")


class RateLimited(AppError):
    status = 429
    type = "/problems/rate-limited"
    title = "Too Many Requests"
    description = "The caller's request budget is spent."
    documented_headers: ClassVar[HeaderDocs] = {
        "Retry-After": ("integer", "Seconds to wait: until the budget resets, at most 60."),
        "RateLimit": ("string", "Remaining budget and seconds to reset (IETF draft)."),
        "RateLimit-Policy": ("string", "The quota and its window (IETF draft)."),
    }

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(
            "The request budget is spent; retry after the time given.", headers=headers
        )
