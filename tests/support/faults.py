"""Faults between the service and PostgreSQL, made on purpose: a TCP proxy of the test's own
whose link is cut, stalled and restored at will, and the service served through it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

from tests.support.processes import serving

CONNECT_TIMEOUT_S = 2


class Link:
    """A TCP proxy to PostgreSQL that can be cut (every connection dropped, new ones refused)
    and restored. It runs on an event loop of its own, in a thread, so that nothing the test
    does (waiting for the server to start, say) stalls the traffic it carries."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        # While stalled, what PostgreSQL sends is held back: queries hang mid-flight.
        self._stalled = False

    def start(self) -> None:
        self._call(self._start())

    def cut(self) -> None:
        self._call(self._cut())

    def stall(self) -> None:
        self._stalled = True

    def resume(self) -> None:
        """Let what a stall held back through, and everything after it."""
        self._stalled = False

    def drop_connections(self) -> None:
        """End every connection now (as a failing network would), but accept new ones."""
        self._call(self._drop())

    def close(self) -> None:
        self._call(self._cut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._drop()

    async def _drop(self) -> None:
        self._stalled = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _connect(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            server_in, server_out = await asyncio.open_connection(*self.target)
        except OSError:
            client_out.transport.abort()
            return
        self._writers.update({client_out, server_out})
        await asyncio.gather(
            self._pipe(client_in, server_out),
            self._pipe(server_in, client_out, stallable=True),
        )

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, stallable: bool = False
    ) -> None:
        try:
            while data := await source.read(65536):
                while stallable and self._stalled and not sink.transport.is_closing():
                    await asyncio.sleep(0.01)
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            self._writers.discard(sink)
            sink.transport.abort()


@contextlib.contextmanager
def served(database_url: str, workdir: Path, *, pooler: bool = False) -> Iterator[str]:
    """The service on `database_url`; with `pooler`, configured for a transaction-pooling
    proxy (every operation in a transaction through SQLAlchemy, not the direct path)."""
    env = {
        **os.environ,
        "DB_POOLER": "pgbouncer" if pooler else "none",
        "DATABASE_URL": database_url,
        "DB_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S),
        "DB_POOL_TIMEOUT": "2",
        "RATE_LIMIT": "0",
        "LOG_LEVEL": "WARNING",
    }
    with serving(cwd=workdir, env=env) as base_url:
        yield base_url
