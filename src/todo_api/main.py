"""The application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.routing import APIRoute
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from todo_api import __version__
from todo_api.api.dispatch import ApiDispatch
from todo_api.api.guarded import GuardedRoute
from todo_api.api.routes import health, metrics, tasks
from todo_api.auth.guard import Guard
from todo_api.config import Settings, load_settings
from todo_api.db.connect import create_database
from todo_api.db.database import Database
from todo_api.db.faults import is_database_unavailable
from todo_api.http.docs import install_docs
from todo_api.http.middleware import RequestMiddleware
from todo_api.http.openapi import build_openapi
from todo_api.http.problems import install_error_handlers
from todo_api.http.responses import JSONResponse
from todo_api.observability.errortracking import (
    ErrorReportingMiddleware,
    flush_error_tracking,
    init_error_tracking,
)
from todo_api.observability.logging import configure_logging
from todo_api.observability.metrics import PoolUsage, enable_metrics, start_worker_metrics
from todo_api.services.idempotency import IdempotencyKeys

logger = logging.getLogger(__name__)

DESCRIPTION = """
A multi-user task API. Every task belongs to the user named in the path.

Errors are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) `application/problem+json`;
validation failures are **400** with an `errors` list naming each field. Timestamps are RFC 3339
in UTC (`...Z`). Every response carries an `X-Request-ID` (send your own to correlate logs).
"""


class TodoAPI(FastAPI):
    """FastAPI, with a shorter way in for HTTP requests.

    The middleware added to the app (the service's own `RequestMiddleware`, and error reporting
    when configured) wraps `ApiDispatch`, which answers `/api` requests at their route; the rest
    go through FastAPI's exception and exit-stack layers to its router, as in any FastAPI app.
    FastAPI's outermost layers are left out: its OpenTelemetry hooks (this service configures
    none), its body limit (`RequestMiddleware` enforces MAX_BODY_SIZE) and Starlette's plain-text
    500 page (`RequestMiddleware` answers an unhandled error as problem+json itself).
    """

    def build_middleware_stack(self) -> ASGIApp:
        handlers = {
            key: handler
            for key, handler in self.exception_handlers.items()
            if key not in (500, Exception)
        }
        rest = ExceptionMiddleware(
            AsyncExitStackMiddleware(self.router), handlers=handlers, debug=self.debug
        )
        app: ASGIApp = ApiDispatch(
            self.router.routes, rest, router=self.router, exception_handlers=handlers
        )
        for middleware in reversed(self.user_middleware):
            app = middleware.cls(app, *middleware.args, **middleware.kwargs)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if self.root_path:
            scope["root_path"] = self.root_path
        scope["app"] = self
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        await self.middleware_stack(scope, receive, send)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    owned = getattr(app.state, "database", None) is None
    if owned:
        app.state.database = create_database(settings)
    logger.info("serving on %s", settings.safe_database_url())
    if not settings.auth_enabled:
        logger.warning(
            "AUTHENTICATION IS OFF: anyone can read and change any user's tasks. "
            "Set AUTH_JWT_SECRET or AUTH_JWKS_URL before exposing this service."
        )
    if settings.is_production and settings.expose_metrics and settings.metrics_token is None:
        logger.warning(
            "/metrics is served without a token: keep it off the public network, or set "
            "METRICS_TOKEN."
        )
    if settings.mcp_enabled and not settings.mcp_serving:
        logger.warning(
            "/mcp is not served: set MCP_PUBLIC_URL to the URL agents reach it at "
            "(https://api.example.com/mcp), or MCP_ENABLED=false to say it is meant to be off."
        )
    worker_metrics = start_worker_metrics(app.state.metrics, lambda: _pool_usage(app))
    try:
        async with AsyncExitStack() as running:
            if app.state.mcp is not None:
                await running.enter_async_context(app.state.mcp.running())
            if app.state.freeze_heap:
                freeze_startup_heap()
            yield
    finally:
        if worker_metrics is not None:
            await worker_metrics.stop()
        if app.state.error_tracking:
            flush_error_tracking()
        await app.state.idempotency.close()
        await app.state.guard.close()
        if owned:
            await app.state.database.dispose()
            app.state.database = None


def freeze_startup_heap() -> None:
    """Put what start-up built out of the cyclic collector's reach.

    Imports, the app, its schemas and the MCP SDK leave 140,000-160,000 tracked objects that
    live as long as the worker. Every full collection walked them all: 80-115 ms each, more than
    once a second under load, 11-17 % of a loaded worker's time. Frozen (`gc.freeze`), they are
    never walked again; what requests allocate is collected as before.
    """
    gc.collect()
    gc.freeze()


def _pool_usage(app: FastAPI) -> list[PoolUsage]:
    database: Database | None = app.state.database
    return database.pool_usage() if database is not None else []


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application. Without `settings`, they are read from the environment."""
    settings = settings or load_settings()
    error_tracking = init_error_tracking(settings)
    app = TodoAPI(
        title="Todo API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # The task routes sit on the application's own router, first: an included router would
        # match each request twice, through a layer of its own, before a route runs.
        routes=tasks.router.routes,
        default_response_class=JSONResponse,
        # A path with a trailing slash is not found: a redirect would name the Host header's
        # site, before authentication (an open redirect for anyone who can set that header).
        redirect_slashes=False,
        # FastAPI's pages load Swagger UI and ReDoc from a CDN; `install_docs` serves its own.
        docs_url=None,
        redoc_url=None,
        # FastAPI's built-in OpenTelemetry hooks check the global providers on every request;
        # this service configures no OpenTelemetry, so they would only cost time.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        openapi_tags=[
            {"name": "tasks", "description": "A user's tasks."},
            {"name": "health", "description": "Liveness and readiness probes."},
        ],
    )
    app.state.settings = settings
    app.state.database = None
    app.state.guard = Guard.from_settings(settings)
    app.state.readiness = health.ReadinessCheck()
    app.state.metrics = enable_metrics() if settings.expose_metrics else None
    app.state.error_tracking = error_tracking
    app.state.idempotency = IdempotencyKeys(ttl=timedelta(hours=settings.idempotency_key_ttl_hours))
    app.state.freeze_heap = False  # a served worker's factory turns it on
    app.state.mcp = None
    if settings.mcp_serving:
        from todo_api.api.mcp import install_mcp  # the SDK is loaded only when it serves

        app.state.mcp = install_mcp(app, settings)
    app.include_router(health.router)
    install_docs(app, openapi_url=app.openapi_url or "/openapi.json")
    if app.state.metrics is not None:
        app.include_router(metrics.router)
    require_guard(app)
    install_error_handlers(app)
    if error_tracking:
        app.add_middleware(ErrorReportingMiddleware, is_outage=is_database_unavailable)
    app.add_middleware(
        RequestMiddleware,
        cors_origins=settings.cors_origins,
        max_body_size=settings.max_body_size,
        is_outage=is_database_unavailable,
        metrics=app.state.metrics,
    )
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app


def require_guard(app: FastAPI) -> None:
    """No `/api` route is public by accident: each must be a `GuardedRoute`."""
    for path, route in _api_routes(app.routes):
        if path.startswith("/api/") and not isinstance(route, GuardedRoute):
            raise RuntimeError(f"{path} does not pass the guard (it is not a `GuardedRoute`)")


def _api_routes(routes: Iterable[Any]) -> Iterator[tuple[str, APIRoute]]:
    """Every API route with its full path, also those of included routers (which newer FastAPI
    versions keep as one entry per router, with the routes it contributes)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route.path, route
            continue
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            for context in contexts():
                original = getattr(context, "original_route", None)
                if isinstance(original, APIRoute):
                    yield context.path, original


def serve_app() -> FastAPI:
    """The factory `todo-api serve` hands to uvicorn: each worker configures its own logging."""
    settings = load_settings()
    configure_logging(settings)
    app = create_app(settings)
    # A worker process lives as long as what it imported; a test process builds many apps.
    app.state.freeze_heap = True
    return app
