"""A real JWKS server on localhost the test controls (what it serves, and how often it was
asked), and providers that are down or never answer.

Nothing here is mocked: the JWKS is served over HTTP by a `ThreadingHTTPServer`.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.factories import JSON
from tests.support.keys import SigningKey
from tests.support.tokens import compact_json


def better_auth_jwk(key: SigningKey) -> JSON:
    """A public key as Better Auth's `/api/auth/jwks` lists it: alg, crv, x, kty, kid; no `use`."""
    public = key.public_jwk
    return {"alg": "EdDSA", "crv": public["crv"], "x": public["x"], "kty": "OKP", "kid": key.kid}


class JWKSServer:
    """Serves a mutable JWKS document at `path` on 127.0.0.1, counting the requests for it."""

    def __init__(self, keys: list[JSON] | None = None, *, path: str = "/.well-known/jwks.json"):
        self.path = path
        self.document: Any = {"keys": list(keys or [])}
        self.status = 200
        self.content_type = "application/json"
        self.location: str | None = None
        self.fetches = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def serve(self, keys: list[JSON]) -> None:
        """Replace the keys served from now on (a key rotation)."""
        with self._lock:
            self.document = {"keys": list(keys)}

    def start(self) -> JWKSServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != owner.path:
                    self.send_error(404)
                    return
                with owner._lock:
                    owner.fetches += 1
                    body = (
                        owner.document
                        if isinstance(owner.document, bytes)
                        else compact_json(owner.document)
                    )
                    status, content_type, location = (
                        owner.status,
                        owner.content_type,
                        owner.location,
                    )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if location is not None:
                    self.send_header("Location", location)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output quiet

        return Handler


@contextmanager
def jwks_server(keys: list[JSON], *, path: str = "/.well-known/jwks.json") -> Iterator[JWKSServer]:
    server = JWKSServer(keys, path=path).start()
    try:
        yield server
    finally:
        server.stop()


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused): the provider is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/.well-known/jwks.json"


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers; counts the connections."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.settimeout(0.05)
        self._accepted: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        port = self._listener.getsockname()[1]
        return f"http://127.0.0.1:{port}/.well-known/jwks.json"

    @property
    def connections(self) -> int:
        return len(self._accepted)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._accepted.append(connection)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        for connection in self._accepted:
            connection.close()
        self._listener.close()
