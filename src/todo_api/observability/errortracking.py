"""Error tracking: unexpected errors go to Sentry when SENTRY_DSN is set.

Only the errors a client sees as a 500 are reported (not 4xx, not a database outage's 503), each
tagged with its request id and the authenticated user id, and described by its method, URL (no
query string) and route. Nothing secret leaves: no request bodies, no local variables, no
`Authorization` or `Cookie` header, no client address; the user is named by their id only.

Reporting errors costs nothing per request. Performance tracing (SENTRY_TRACES_SAMPLE_RATE above
0) needs the SDK's FastAPI/Starlette integration, which wraps every request and middleware and
measured about 0.3 ms of CPU per request, so it is installed only then. Without SENTRY_DSN the SDK
is not even imported.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from todo_api import __version__
from todo_api.config import Settings
from todo_api.errors import AppError
from todo_api.observability.requestctx import authenticated_user, current_request_id, route_template

if TYPE_CHECKING:
    from sentry_sdk._types import Event, Hint

logger = logging.getLogger(__name__)

# Dropped from every event, whatever the SDK's own defaults would keep.
SCRUBBED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
FLUSH_TIMEOUT_S = 2.0


def init_error_tracking(settings: Settings, **options: Any) -> bool:
    """Start the Sentry SDK when SENTRY_DSN is set (True); otherwise do nothing (False).

    `options` go to `sentry_sdk.init` as they are (tests pass a `transport`).
    """
    if settings.sentry_dsn is None:
        return False
    with warnings.catch_warnings():
        # Recent SDKs prefer `data_collection` and warn; `send_default_pii` is what every 2.x
        # release understands, and they map it to the same collection.
        warnings.filterwarnings("ignore", "The send_default_pii option", DeprecationWarning)
        _start_sdk(settings, settings.sentry_dsn.get_secret_value(), **options)
    logger.info("reporting unexpected errors to Sentry")
    return True


def _start_sdk(settings: Settings, dsn: str, **options: Any) -> None:
    import sentry_sdk
    from sentry_sdk.integrations import Integration

    integrations: list[Integration] = []
    if settings.sentry_traces_sample_rate > 0:
        from sentry_sdk.integrations.fastapi import FastApiIntegration
        from sentry_sdk.integrations.starlette import StarletteIntegration

        # HTTP errors are reported below, not by status code.
        integrations = [
            StarletteIntegration(failed_request_status_codes=set()),
            FastApiIntegration(failed_request_status_codes=set()),
        ]
    sentry_sdk.init(
        dsn=dsn,
        environment=settings.sentry_environment or settings.environment,
        release=f"todo-api@{__version__}",
        traces_sample_rate=settings.sentry_traces_sample_rate or None,
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,  # a frame's locals can hold the token or the body
        # Release-health sessions would be one more record per request; errors are what we want.
        auto_session_tracking=False,
        # No logging, threading or HTTP-client hooks: only what is configured here.
        default_integrations=False,
        integrations=integrations,
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        **options,
    )


def flush_error_tracking() -> None:
    """Send what is still queued, before the process exits."""
    import sentry_sdk

    sentry_sdk.flush(timeout=FLUSH_TIMEOUT_S)


class ErrorReportingMiddleware:
    """Reports an exception that will become a 500 to Sentry, tagged with the request id and the
    user id, then lets it on to the last-resort handler of `RequestMiddleware` (just outside
    this one)."""

    def __init__(self, app: ASGIApp, *, is_outage: Callable[[BaseException], bool]) -> None:
        self.app = app
        self.is_outage = is_outage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            # The same split as the error responses: a refusal or an outage is no bug.
            if not isinstance(exc, AppError) and not self.is_outage(exc):
                _report(exc, scope)
            raise


def _report(exc: Exception, scope: Scope) -> None:
    import sentry_sdk

    user_id = authenticated_user(scope)
    with sentry_sdk.new_scope() as sentry_scope:
        sentry_scope.set_tag("request_id", current_request_id())
        if user_id is not None:
            sentry_scope.set_tag("user_id", user_id)
            sentry_scope.set_user({"id": user_id})
        sentry_scope.add_event_processor(partial(_describe_request, scope))
        sentry_sdk.capture_exception(exc)


def _describe_request(scope: Scope, event: Event, _hint: Hint) -> Event:
    """The request behind an event, unless the framework integration described it already."""
    event.setdefault("request", {"method": scope["method"], "url": _url(scope)})
    route = route_template(scope)
    if route is not None:
        event.setdefault("transaction", route)
    return event


def _url(scope: Scope) -> str:
    host = next(
        (value.decode("latin-1") for name, value in scope["headers"] if name == b"host"), ""
    )
    return f"{scope.get('scheme', 'http')}://{host}{scope['path']}"


def scrub_event(event: Event, _hint: Hint) -> Event:
    """Drop credentials, bodies and query strings from an event, should an integration have
    added them."""
    request = event.get("request")
    if request:
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: value
                for name, value in headers.items()
                if name.lower() not in SCRUBBED_HEADERS
            }
        for key in ("cookies", "data", "query_string"):  # a search query is user data too
            request.pop(key, None)
    return event
