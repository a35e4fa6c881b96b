"""The limits `todo-api serve` enforces on every connection, before the application sees a byte.

uvicorn's httptools protocol has no cap on the header block and no deadline for a request in
transit: its keep-alive timeout only covers the wait *between* requests, so a client trickling a
header line or a body byte by byte holds a connection (and its buffers) for as long as it likes.
This subclass adds, per connection:

- a header block of at most `header_bytes` (431, without reading the rest);
- a deadline for a request's complete header block, counted from the connection's opening or the
  request's first byte (408, or a plain close if nothing was sent at all);
- a minimum rate for a body once its headers are in: `header_timeout_s` of grace, then every
  `body_min_rate` bytes buy one more second (408);
- a cap on the connections one worker serves at once (503 with `Retry-After`, then close).

These answers come from the server, not the application, so they are plain text. Timers are armed
only while a request is incomplete at the end of a read: a request that arrives in one read (nearly
all of them) costs a counter and nothing else. A request pipelined behind another in one read
gets its deadline at the end of that read; its bytes there are not counted toward the cap until
its header block is complete (when its size is checked exactly).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

logger = logging.getLogger("todo_api.server")

REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Unavailable"}


@dataclass(frozen=True)
class ServerLimits:
    header_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0
    body_min_rate: int = 1024
    max_connections: int = 1000


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ServerLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._timer: asyncio.TimerHandle | None = None
        self._in_headers = True  # awaiting (the rest of) a header block
        self._header_bytes = 0  # bytes received since the last complete request
        self._in_body = False
        self._body_bytes = 0
        self._body_started = 0.0
        self._requests = 0
        self._refused = False
        # A request began inside a read that also ended the one before (pipelining): its first
        # bytes were not counted, and no deadline was armed for it yet.
        self._began = False
        # Whether this connection arrived when the worker already held its cap: the newest ones
        # are refused, never one that came within it.
        self._arrived_over_cap = False

    # Connection events

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arrived_over_cap = len(self.connections) > self.limits.max_connections
        # A connection that never completes a request is closed like one that stalls mid-way.
        self._arm(self.limits.header_timeout_s, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._refused or self.transport.is_closing():
            return
        if self._in_headers:
            if self._header_bytes > self.limits.header_bytes:
                self._refuse(431, f"header block over {self.limits.header_bytes} bytes")
            elif (self._header_bytes or self._began) and self._timer is None:
                self._arm(self.limits.header_timeout_s, self._headers_late)
        elif self._in_body and self._timer is None:
            self._body_started = self.loop.time()
            self._arm(self.limits.header_timeout_s, self._body_late)

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began = True

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._disarm()
        self._in_headers = False
        self._began = False
        # Exact for a block that arrived in one read (the per-read count sees only whole reads).
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.header_bytes:
            self._refuse(431, f"header block over {self.limits.header_bytes} bytes")
            return
        self._requests += 1
        over_cap = len(self.connections) > self.limits.max_connections
        if self._requests == 1 and self._arrived_over_cap and over_cap:
            self._refuse(503, f"over {self.limits.max_connections} connections", retry_after=1)
            return
        super().on_headers_complete()
        self._in_body = True
        self._body_bytes = 0

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._disarm()
        self._in_body = False
        self._in_headers = True
        self._header_bytes = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            self._refused = True
            super().send_400_response(msg)

    # Deadlines

    def _headers_late(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if (self._header_bytes == 0 and not self._began) or not self._idle():
            self.transport.close()  # nothing asked yet, or an answer already on its way
            return
        self._refuse(408, f"header block not received within {self.limits.header_timeout_s:g} s")

    def _body_late(self) -> None:
        self._timer = None
        if not self._in_body or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the application is behind, not the client: that second is
            self._body_started += 1.0  # not the client's to make up
            self._arm(1.0, self._body_late)
            return
        due = (
            self._body_started
            + self.limits.header_timeout_s
            + self._body_bytes / self.limits.body_min_rate
        )
        if due > now:
            self._arm(due - now, self._body_late)
            return
        reason = f"body slower than {self.limits.body_min_rate} bytes/s"
        if self.cycle is not None and self.cycle.response_started:
            logger.info("connection closed: %s", reason, extra={"client": self._client()})
            self.cycle.keep_alive = False
            self.transport.close()
            return
        self._refuse(408, reason)

    # Helpers

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _may_answer(self) -> bool:
        """Whether an answer now would be read as the answer to the request being refused: no
        earlier response is pending, or the one pending is this request's own, not begun."""
        if self._idle():
            return True
        return self._in_body and not self.cycle.response_started

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _client(self) -> str | None:
        return f"{self.client[0]}:{self.client[1]}" if self.client else None

    def _refuse(self, status: int, reason: str, *, retry_after: int | None = None) -> None:
        """Answer `status` in plain text and close the connection; nothing more is read. Behind
        an earlier response still on its way (pipelining), the connection is only closed."""
        self._refused = True
        self._disarm()
        logger.info("request refused (%d): %s", status, reason, extra={"client": self._client()})
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        if not self._may_answer():
            self.transport.close()
            return
        body = reason.encode() + b"\n"
        head = [
            b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status]),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
        ]
        if retry_after is not None:
            head.append(b"retry-after: %d\r\n" % retry_after)
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()
