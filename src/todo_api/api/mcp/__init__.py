"""The MCP endpoint: the task operations as Model Context Protocol tools, at `/mcp`.

Imported only when MCP_ENABLED is on (the SDK costs a worker start-up time and memory);
`install_mcp` mounts it on an application.
"""

from __future__ import annotations

from fastapi import FastAPI

from todo_api.api.mcp.endpoint import McpEndpoint, routes
from todo_api.config import Settings


def install_mcp(app: FastAPI, settings: Settings) -> McpEndpoint:
    """Mount `/mcp` (and its metadata) on `app`; the app's lifespan runs the endpoint."""
    endpoint = McpEndpoint(settings, app.state.guard, app.state.idempotency)
    app.router.routes.extend(routes(settings, endpoint))
    return endpoint
