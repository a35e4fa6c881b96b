"""What the connection limits of `todo-api serve` cost per request: uvicorn's httptools protocol
and the bounded subclass (`todo_api.http.server`), side by side in one process, each parsing the
same keep-alive requests and answering them from a trivial ASGI app over an in-memory transport.

    .venv/bin/python bench/protocol.py [--requests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from functools import partial
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from todo_api.http.server import BoundedHttpToolsProtocol, ServerLimits

GET = (
    b"GET /api/alice/tasks/0b5e0f9c-2f4e-4b8e-9b53-3f0e8d9b1c2a HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8000\r\nUser-Agent: bench\r\nAccept: application/json\r\n"
    b"Authorization: Bearer " + b"x" * 180 + b"\r\n\r\n"
)
POST = (
    b"POST /api/alice/tasks HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
    b"Content-Length: 27\r\n\r\n"
    b'{"title": "a task to make"}'
)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"{}"})


class Transport:
    """Enough of an asyncio transport for the protocol: writes are counted, not sent."""

    def __init__(self) -> None:
        self.responses = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.responses += data.count(b"HTTP/1.1 ")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


async def run(protocol_class: Any, request: bytes, requests: int) -> float:
    """Microseconds per request, parsing to answer, on one keep-alive connection."""
    config = Config(app=app, log_config=None, access_log=False, lifespan="off")
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    began = time.perf_counter()
    for n in range(requests):
        protocol.data_received(request)
        while transport.responses <= n:
            await asyncio.sleep(0)
    elapsed = time.perf_counter() - began
    protocol.connection_lost(None)
    return elapsed / requests * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bounded = partial(BoundedHttpToolsProtocol, limits=ServerLimits())
    for name, request in (("GET", GET), ("POST", POST)):
        timings: dict[str, list[float]] = {"httptools": [], "bounded": []}
        for _ in range(args.rounds):  # alternate, so neither always meets a warmer machine
            timings["httptools"].append(await run(HttpToolsProtocol, request, args.requests))
            timings["bounded"].append(await run(bounded, request, args.requests))
        plain, ours = (statistics.median(timings[k]) for k in ("httptools", "bounded"))
        print(
            f"{name:5} httptools {plain:6.2f} us/req   bounded {ours:6.2f} us/req   "
            f"limits cost {ours - plain:+.2f} us ({(ours - plain) / plain:+.1%})"
        )


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
