"""What the layers of one request share without passing it around: its id (for logs and error
bodies), and the keys under which the guard leaves its findings in the ASGI scope."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from starlette.types import Scope

# Requests under this prefix pass the guard.
GUARDED_PREFIX = "/api/"
# In `scope["state"]`: the authenticated user (for the access log and error reports), and
# headers every response to the request carries (the rate-limit headers).
USER_KEY = "user_id"
RESPONSE_HEADERS_KEY = "response_headers"
# The MCP tool a request called and its outcome (`ok`, or the refusal's problem type).
MCP_CALL_KEY = "mcp_call"

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> Token[str | None]:
    return _request_id.set(value)


def reset_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


def request_state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def authenticated_user(scope: Scope) -> str | None:
    """The user whose token the request carried, once verified (even if then refused)."""
    user: str | None = scope.get("state", {}).get(USER_KEY)
    return user


def tool_call(scope: Scope) -> tuple[str, str] | None:
    """The MCP tool the request called, and the call's outcome."""
    call: tuple[str, str] | None = scope.get("state", {}).get(MCP_CALL_KEY)
    return call


def route_template(scope: Scope) -> str | None:
    """The template of the route that served the request (`/api/{user_id}/tasks`); None when
    none did: an unknown path, or a request answered before routing (a CORS preflight, a body
    declared too large). Parameters are named without their converter (`{task_id}`)."""
    path = getattr(scope.get("route"), "path_format", None)
    return path if isinstance(path, str) else None
