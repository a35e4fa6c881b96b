"""The MCP SDK's own client over Streamable HTTP, as an agent connects to `/mcp`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

# The two ways the SDK's client connects: the initialize handshake (protocol revisions up to
# 2025-11-25) and the per-request 2026-07-28 revision it discovers.
MODES: tuple[Literal["legacy", "auto"], ...] = ("legacy", "auto")


@asynccontextmanager
async def mcp_client(
    url: str,
    *,
    token: str | None = None,
    mode: Literal["legacy", "auto"] = "auto",
    transport: httpx2.AsyncBaseTransport | None = None,
    verify: Any = True,
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx2.AsyncClient(headers=headers, transport=transport, verify=verify) as http:
        async with Client(
            streamable_http_client(url, http_client=http), mode=mode, cache=None
        ) as client:
            yield client
