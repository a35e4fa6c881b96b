"""The limits `todo-api serve` puts on every connection, tried with raw sockets against a real
served process: a header block over 64 KiB, a header or body trickled in, an idle connection that
never asks, and one connection too many. Deadlines are short here (HTTP_HEADER_TIMEOUT_S) so the
tests take seconds; the defaults are in docs/configuration.md."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import launch
from tests.system.test_cli_migrate import cli_env

pytestmark = pytest.mark.system

DEADLINE_S = 2.0
MAX_CONNECTIONS = 4
HEADER_CAP = 64 * 1024
# Generous bounds on how long a refusal may take: the deadline plus the loop's slack.
CLOSED_WITHIN_S = DEADLINE_S + 3


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    tmp_path: Path = tmp_path_factory.mktemp("limits")
    env = {
        **cli_env(f"sqlite+aiosqlite:///{tmp_path / 'todo.db'}"),
        "HTTP_HEADER_TIMEOUT_S": str(DEADLINE_S),
        "HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        process, base_url = launch(cwd=tmp_path, env=env, stderr=stderr)
    host, port = base_url.removeprefix("http://").split(":")
    try:
        yield host, int(port), log
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def server(served: tuple[str, int, Path]) -> tuple[str, int]:
    return served[0], served[1]


def connect(server: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(server, timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, *, within: float = 10) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass  # closed with our unread bytes still in its buffer: what was sent first still came
    return received, time.monotonic() - started


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length body, leaving the connection open."""
    sock.settimeout(10)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def logged(log: Path, text: str) -> bool:
    """Whether `text` reaches the server's log within a few seconds (it is written apart)."""
    deadline = time.monotonic() + 5
    while text not in log.read_text():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def sent_completely(sock: socket.socket, size: int) -> bool:
    try:
        for _ in range(size // HEADER_CAP):
            sock.sendall(b"a" * HEADER_CAP)
            time.sleep(0.01)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def trickle(sock: socket.socket, byte: bytes, *, give_up_after: float) -> tuple[bytes, float]:
    """Send `byte` every 0.3 s until the server answers or closes; what it said, and when."""
    started = time.monotonic()
    sock.settimeout(0.3)
    response = b""
    while not response and time.monotonic() - started < give_up_after:
        try:
            sock.send(byte)
            response = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
    return response, time.monotonic() - started


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


GET = b"GET /api/alice/tasks HTTP/1.1\r\nHost: test\r\n"


def room_again(server: tuple[str, int]) -> bool:
    """Whether a new connection is served within a few seconds (the server has let go of the
    connections earlier tests closed)."""
    deadline = time.monotonic() + 5
    while True:
        with connect(server) as sock:
            sock.sendall(GET + b"\r\n")
            if status_of(read_response(sock)) == 200:
                time.sleep(0.1)  # and let go of this one too
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


class TestHeaderBlock:
    def test_a_header_block_within_the_cap_is_served(self, server: tuple[str, int]) -> None:
        with connect(server) as sock:
            sock.sendall(GET + b"X-Padding: " + b"a" * (HEADER_CAP - 1024) + b"\r\n\r\n")
            assert status_of(read_response(sock)) == 200

    def test_a_1_mb_header_is_refused_before_it_is_all_sent(self, server: tuple[str, int]) -> None:
        with connect(server) as sock:
            sock.sendall(GET + b"X-Padding: " + b"a" * (4 * HEADER_CAP))

            # The answer comes while the header line is still open; the rest is never read.
            response, _ = read_until_closed(sock)
            assert status_of(response) == 431
            assert not sent_completely(sock, 1024 * 1024)  # the server is gone

    def test_a_complete_block_over_the_cap_is_refused_and_logged(
        self, served: tuple[str, int, Path]
    ) -> None:
        host, port, log = served
        with connect((host, port)) as sock:
            sock.sendall(GET + b"X-Padding: " + b"a" * (HEADER_CAP + 1024) + b"\r\n\r\n")

            response, _ = read_until_closed(sock)
            assert status_of(response) == 431
            assert b"connection: close" in response.lower()
        assert logged(log, "request refused (431): header block over 65536 bytes")


class TestDeadlines:
    def test_a_trickled_header_block_is_closed_at_the_deadline(
        self, server: tuple[str, int]
    ) -> None:
        with connect(server) as sock:
            sock.sendall(GET)
            response, elapsed = trickle(sock, b"x", give_up_after=CLOSED_WITHIN_S + 5)

            assert status_of(response) == 408
            assert DEADLINE_S - 0.5 <= elapsed <= CLOSED_WITHIN_S

    def test_a_request_pipelined_behind_another_has_the_same_deadline(
        self, server: tuple[str, int]
    ) -> None:
        with connect(server) as sock:
            sock.sendall(GET + b"\r\n" + GET)  # a whole request and the start of the next, at once
            assert status_of(read_response(sock)) == 200

            # Not the 75 s keep-alive: the second request's headers have their deadline too.
            response, elapsed = read_until_closed(sock)

        assert status_of(response) == 408
        assert elapsed <= CLOSED_WITHIN_S

    def test_a_connection_that_never_asks_is_closed_at_the_deadline(
        self, server: tuple[str, int]
    ) -> None:
        with connect(server) as sock:
            received, elapsed = read_until_closed(sock)

            assert received == b""  # nothing was asked, so nothing is answered
            assert DEADLINE_S - 0.5 <= elapsed <= CLOSED_WITHIN_S

    def test_a_trickled_body_is_closed(self, server: tuple[str, int]) -> None:
        with connect(server) as sock:
            sock.sendall(
                b"POST /api/alice/tasks HTTP/1.1\r\nHost: test\r\n"
                b"Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n{"
            )
            response, elapsed = trickle(sock, b" ", give_up_after=CLOSED_WITHIN_S + 5)

            assert status_of(response) == 408
            assert b"bytes/s" in response
            # 4 KiB at the minimum rate (1 KiB/s) would be allowed DEADLINE_S + 4 s; a trickle
            # earns almost nothing beyond the grace.
            assert DEADLINE_S - 0.5 <= elapsed <= CLOSED_WITHIN_S

    @pytest.mark.parametrize("method", ["POST", "PATCH"])
    def test_a_chunked_body_over_the_size_limit_is_413_at_once(
        self, server: tuple[str, int], method: str
    ) -> None:
        """No Content-Length to refuse up front: the chunk that crosses 64 KiB ends it."""
        path = b"/api/alice/tasks" + (
            b"/" + str(uuid.uuid4()).encode() if method == "PATCH" else b""
        )
        with connect(server) as sock:
            sock.sendall(
                method.encode() + b" " + path + b" HTTP/1.1\r\nHost: test\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            for size in (65532, 10000):
                sock.sendall(b"%x\r\n" % size + b"{" + b" " * (size - 1) + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
            started = time.monotonic()
            head = read_response(sock)

            assert status_of(head) == 413
            assert b"application/problem+json" in head
            assert time.monotonic() - started < 2  # answered, not left waiting for the client

    def test_a_body_sent_in_pauses_within_the_grace_is_served(
        self, server: tuple[str, int]
    ) -> None:
        body = b'{"title": "sent in two parts"}'
        with connect(server) as sock:
            sock.sendall(
                b"POST /api/alice/tasks HTTP/1.1\r\nHost: test\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % len(body)
                + body[:10]
            )
            time.sleep(DEADLINE_S / 4)
            sock.sendall(body[10:])

            assert status_of(read_response(sock)) == 201

    def test_an_idle_keep_alive_connection_outlives_the_header_deadline(
        self, server: tuple[str, int]
    ) -> None:
        with connect(server) as sock:
            sock.sendall(GET + b"\r\n")
            assert status_of(read_response(sock)) == 200
            time.sleep(DEADLINE_S + 1)  # idle between requests: the keep-alive timeout applies

            sock.sendall(GET + b"\r\n")
            assert status_of(read_response(sock)) == 200


class TestConnectionCap:
    def test_the_connections_beyond_the_cap_are_the_ones_refused(
        self, server: tuple[str, int]
    ) -> None:
        """Two more than the cap open; the first ones ask while all are still open."""
        assert room_again(server)
        opened = [connect(server) for _ in range(MAX_CONNECTIONS + 2)]
        time.sleep(0.2)  # every one accepted before any asks
        try:
            for sock in opened[:MAX_CONNECTIONS]:
                sock.sendall(GET + b"\r\n")
                assert status_of(read_response(sock)) == 200
            for sock in opened[MAX_CONNECTIONS:]:
                sock.sendall(GET + b"\r\n")
                response, _ = read_until_closed(sock)
                assert status_of(response) == 503
        finally:
            for sock in opened:
                sock.close()

    def test_a_connection_over_the_cap_gets_503_and_is_closed(
        self, server: tuple[str, int]
    ) -> None:
        assert room_again(server)
        held = [connect(server) for _ in range(MAX_CONNECTIONS)]
        try:
            for sock in held:  # each one served: the server counts them all
                sock.sendall(GET + b"\r\n")
                assert status_of(read_response(sock)) == 200
            with connect(server) as extra:
                extra.sendall(GET + b"\r\n")
                response, _ = read_until_closed(extra)

            assert status_of(response) == 503
            assert b"retry-after: 1" in response.lower()
            for sock in held:  # those already in keep serving
                sock.sendall(GET + b"\r\n")
                assert status_of(read_response(sock)) == 200
        finally:
            for sock in held:
                sock.close()

        assert room_again(server)  # once they are gone
