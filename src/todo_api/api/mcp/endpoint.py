"""`/mcp`: the Model Context Protocol endpoint (Streamable HTTP), in the API's own process.

The official SDK speaks the protocol: its low-level `Server` with this service's tools, behind
its session manager in stateless mode with JSON responses, so any worker (or any instance
behind a load balancer) answers any call. Both protocol eras work: the initialize handshake
(2024-11-05 to 2025-11-25) and the per-request 2026-07-28 revision.

Before the SDK sees a request, this endpoint
1. checks its `Host` (and `Origin`, when sent) against the settings, with the SDK's rule against
   DNS rebinding;
2. authenticates it: the bearer token goes through the SDK's token-verification hook
   (`BearerAuthBackend` over `SubjectTokenVerifier`, the project's own verifier), and a refusal
   is the API's problem+json 401, whose `WWW-Authenticate` names the protected-resource
   metadata (RFC 9728). Without authentication configured, every call acts for MCP_DEV_USER.

Each tool call then spends the subject's request budget (the one `/api` spends) and leaves its
tool and outcome for the access line and the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from mcp import types
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from todo_api import __version__
from todo_api.api.deps import database_of
from todo_api.api.mcp.tools import (
    BY_NAME,
    TOOLS,
    Call,
    Refusal,
    Tool,
    call_tool,
    tool_error,
    tool_result,
)
from todo_api.auth.guard import Guard, bearer_token, client_key, record_refusal
from todo_api.auth.tokens import TokenVerifier
from todo_api.config import LOCAL_MCP_HOSTS, Settings
from todo_api.errors import AppError, InternalError, RepeatedCredentials, Unauthorized
from todo_api.http.problems import app_error_response, problem_response
from todo_api.observability.metrics import count_auth_failure, observe_tool_call
from todo_api.observability.requestctx import (
    MCP_CALL_KEY,
    USER_KEY,
    current_request_id,
    request_state,
)
from todo_api.services.idempotency import IdempotencyKeys

logger = logging.getLogger(__name__)

PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"
# Whom a call acts for, as the endpoint left it in `scope["state"]`.
SUBJECT_KEY = "mcp_subject"
UNKNOWN_TOOL = "unknown-tool"
FAILED = "internal-server-error"
INSTRUCTIONS = (
    "The user's own task list. Tasks have an id, a title, an optional description, "
    "completed, a priority (low, medium, high), an optional due_at, tags and a version. "
    "Find ids with list_tasks; pass a task's version as expected_version to change it only if "
    "nobody else has meanwhile; pass an idempotency_key to add_task so a retry creates one task."
)

# Why the token verifier refused the request's token (the hook returns only None).
_refusal: ContextVar[Unauthorized | None] = ContextVar("mcp_token_refusal", default=None)


class SubjectTokenVerifier:
    """The SDK's `TokenVerifier` hook over the project's verifier: the access token names the
    user the token proves as its subject (and client id, for the SDK's session ownership)."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            user_id = await self.verifier.verify(token.strip())
        except Unauthorized as refusal:
            _refusal.set(refusal)
            return None
        return AccessToken(token=token, client_id=user_id, scopes=[], subject=user_id)


class McpEndpoint:
    """The ASGI app at `/mcp`; `running()` is its part of the application's lifespan."""

    def __init__(self, settings: Settings, guard: Guard, idempotency: IdempotencyKeys) -> None:
        self.guard = guard
        self.idempotency = idempotency
        self.dev_user = settings.mcp_dev_user
        self.retention_days = settings.tombstone_retention_days
        self.resource_url = settings.mcp_resource_url
        self.metadata_url = metadata_url(self.resource_url)
        self.backend = (
            BearerAuthBackend(SubjectTokenVerifier(guard.verifier))
            if guard.verifier is not None
            else None
        )
        self.security = TransportSecurityMiddleware(
            TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=settings.mcp_hosts,
                allowed_origins=_allowed_origins(settings),
            )
        )
        self.server: Server[Any] = Server(
            "todo-api",
            version=__version__,
            title="Todo API",
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        self._definitions = [tool.definition() for tool in TOOLS]
        self._manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the SDK's session manager (a fresh one each time the application starts)."""
        manager = StreamableHTTPSessionManager(app=self.server, json_response=True, stateless=True)
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        refused = await self.security.validate_request(request, is_post=request.method == "POST")
        if refused is not None:
            response = problem_response(
                PATH,
                status=refused.status_code,
                type_="/problems/mcp-request-refused",
                title="MCP request refused",
                detail=bytes(refused.body).decode(),
            )
            await response(scope, receive, send)
            return
        try:
            await self._authenticate(request)
        except AppError as exc:
            await self._refusal_response(exc)(scope, receive, send)
            return
        manager = self._manager
        if manager is None:
            raise RuntimeError("the MCP endpoint is not running: the app's lifespan did not start")
        await manager.handle_request(scope, receive, send)

    async def _authenticate(self, request: Request) -> None:
        state = request_state(request.scope)
        if self.backend is None:
            state[SUBJECT_KEY] = self.dev_user
            return
        reset = _refusal.set(None)
        try:
            bearer_token(request)  # one well-formed `Authorization: Bearer` header, or the 4xx
            authenticated = await self.backend.authenticate(request)
            if authenticated is None:
                raise _refusal.get() or Unauthorized("token refused", reason="malformed")
        except Unauthorized as refusal:
            record_refusal(refusal)
            await self.guard.spend(request, client_key(request))
            raise
        except RepeatedCredentials:
            count_auth_failure("repeated_header")
            await self.guard.spend(request, client_key(request))
            raise
        finally:
            _refusal.reset(reset)
        credentials, user = authenticated
        request.scope["auth"], request.scope["user"] = credentials, user
        state[USER_KEY] = state[SUBJECT_KEY] = user.access_token.subject

    def _refusal_response(self, exc: AppError) -> Response:
        response = app_error_response(PATH, exc)
        challenge = response.headers.get("www-authenticate")
        if challenge is not None:
            # Where a client learns how to get a token for this resource (RFC 9728 §5.1).
            del response.headers["www-authenticate"]
            response.headers["WWW-Authenticate"] = (
                f'{challenge}, resource_metadata="{self.metadata_url}"'
            )
        return response

    async def _list_tools(
        self, _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self._definitions)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        request: Request = ctx.request  # type: ignore[assignment]
        state = request_state(request.scope)
        began = time.perf_counter()
        tool = BY_NAME.get(params.name)
        if tool is None:
            outcome, answer = UNKNOWN_TOOL, tool_error(_unknown_tool(params.name))
        else:
            outcome, answer = await self._run(tool, request, state, params.arguments or {})
        name = tool.name if tool is not None else None
        state[MCP_CALL_KEY] = (name or "unknown", outcome)
        observe_tool_call(name, outcome, time.perf_counter() - began)
        return answer

    async def _run(
        self, tool: Tool, request: Request, state: dict[str, Any], arguments: dict[str, Any]
    ) -> tuple[str, types.CallToolResult]:
        subject: str = state[SUBJECT_KEY]
        authenticated = state.get(USER_KEY) is not None
        call = Call(
            db=database_of(request),
            user_id=subject,
            idempotency=self.idempotency,
            tombstone_retention_days=self.retention_days,
        )
        try:
            try:
                await self.guard.spend(
                    request, f"user:{subject}" if authenticated else client_key(request)
                )
            except AppError as exc:
                raise Refusal.of(tool, exc) from None
            result, outcome = await call_tool(tool, call, arguments)
        except Refusal as refusal:
            return refusal.outcome, tool_error(refusal.text)
        except Exception:
            logger.exception("tool %s failed", tool.name)
            return FAILED, tool_error(
                f"{InternalError().detail} Request id: {current_request_id()}."
            )
        return outcome, tool_result(result)


def _unknown_tool(name: str) -> str:
    known = ", ".join(tool.name for tool in TOOLS)
    return f"There is no tool named {name[:100]!r}; the tools are: {known}."


def metadata_url(resource_url: str) -> str:
    """Where RFC 9728 §3.1 puts a resource's metadata: the well-known path, then its path."""
    parts = urlsplit(resource_url)
    return f"{parts.scheme}://{parts.netloc}{METADATA_PATH}{parts.path.rstrip('/')}"


def metadata_document(settings: Settings) -> dict[str, Any]:
    """The OAuth 2.0 Protected Resource Metadata (RFC 9728) of `/mcp`."""
    document: dict[str, Any] = {
        "resource": settings.mcp_resource_url,
        "bearer_methods_supported": ["header"],
        "resource_name": "Todo API",
    }
    issuer = settings.auth_jwt_issuer
    if issuer is not None and urlsplit(issuer).scheme in ("http", "https"):
        document["authorization_servers"] = [issuer]
    return document


def _allowed_origins(settings: Settings) -> list[str]:
    """The `Origin` values /mcp accepts: the configured CORS origins, its own, and in
    development this machine's on any port."""
    parts = urlsplit(settings.mcp_resource_url)
    origins = [*settings.cors_origins, f"{parts.scheme}://{parts.netloc}"]
    if not settings.is_production:
        origins.extend(f"http://{host}" for host in LOCAL_MCP_HOSTS)
    return origins


def routes(settings: Settings, endpoint: McpEndpoint) -> list[Route]:
    """`/mcp`, and with authentication its metadata, at the path RFC 9728 derives and at the
    root (where clients that ignore the resource's path look)."""
    # POST only: stateless, there is no stream for server-initiated messages (GET) and no
    # session to end (DELETE); both get 405, as the transport's specification provides.
    route = _McpRoute(PATH, endpoint=endpoint, methods=["POST"])
    found: list[Route] = [route]
    if settings.auth_enabled:
        document = metadata_document(settings)

        async def metadata(_request: Request) -> Response:
            return JSONResponse(document, headers={"Cache-Control": "public, max-age=3600"})

        own = urlsplit(endpoint.metadata_url).path
        for path in dict.fromkeys((own, METADATA_PATH)):
            found.append(Route(path, metadata, methods=["GET"], include_in_schema=False))
    return found


class _McpRoute(Route):
    """`/mcp` as a route the access log and metrics name (`scope["route"]`), left out of the
    OpenAPI document (it is not REST)."""

    def __init__(self, path: str, *, endpoint: McpEndpoint, methods: list[str]) -> None:
        super().__init__(path, endpoint=endpoint, methods=methods, include_in_schema=False)

    def matches(self, scope: Scope) -> tuple[Any, Scope]:
        match, child = super().matches(scope)
        if child:
            child["route"] = self
        return match, child
