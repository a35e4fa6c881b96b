"""The shipped reverse-proxy configuration (deploy/nginx/default.conf.template), run for real:
Debian's nginx with a certificate made here, in front of `todo-api serve`. Requests over TLS,
plain HTTP redirected, the client's address and scheme carried to the API (and a forged
`X-Forwarded-For` ignored), and the edge's limits. The only change to the file is where it
listens (free loopback ports instead of 80 and 443). Skipped where nginx is missing (`.ci/run`
installs it)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.certificates import issue, make_authority
from tests.support.mcp import mcp_client
from tests.support.processes import free_port, launch
from tests.system.test_cli_migrate import cli_env
from tests.system.test_server_limits import status_of, trickle

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
TEMPLATE = Path(__file__).parents[2] / "deploy" / "nginx" / "default.conf.template"
pytestmark = [pytest.mark.system, pytest.mark.skipif(NGINX is None, reason="nginx is missing")]

# The configuration's own figures.
HEADER_TIMEOUT_S = 10
PER_CLIENT = 64


@dataclass(frozen=True)
class Edge:
    https_port: int
    http_port: int
    authority: Path
    api_log: Path

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    def client(self, *, local_address: str = "127.0.0.1") -> httpx.Client:
        transport = httpx.HTTPTransport(
            verify=ssl.create_default_context(cafile=self.authority),
            local_address=local_address,
        )
        return httpx.Client(base_url=self.url, transport=transport, timeout=10)

    def raw(self) -> ssl.SSLSocket:
        context = ssl.create_default_context(cafile=self.authority)
        sock = socket.create_connection(("127.0.0.1", self.https_port), timeout=10)
        return context.wrap_socket(sock, server_hostname="localhost")

    def access_records(self) -> list[dict[str, object]]:
        records = [
            json.loads(line)
            for line in self.api_log.read_text().splitlines()
            if line.startswith("{")
        ]
        return [record for record in records if record.get("logger") == "todo_api.access"]


def render(template: str, *, upstream: str, certificate: Path, key: Path, ports: Edge) -> str:
    """The template as the nginx image renders it, listening on the test's ports."""
    text = (
        template.replace("${TODO_API_UPSTREAM}", upstream)
        .replace("${TLS_CERTIFICATE}", str(certificate))
        .replace("${TLS_CERTIFICATE_KEY}", str(key))
    )
    assert "${" not in text, "a variable the test does not know"
    text = re.sub(r"^\s*listen \[::\]:\d+[^;]*;\n", "", text, flags=re.MULTILINE)
    text = text.replace("listen 80;", f"listen 127.0.0.1:{ports.http_port};")
    return text.replace("listen 443 ssl;", f"listen 127.0.0.1:{ports.https_port} ssl;")


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    root: Path = tmp_path_factory.mktemp("proxy")
    api_log = root / "api.log"
    # Trusting any forwarder makes uvicorn take the leftmost X-Forwarded-For entry: the client's
    # own, had nginx appended to the header rather than replaced it.
    https_port, http_port = free_port(), free_port()
    env = {
        **cli_env(f"sqlite+aiosqlite:///{root / 'todo.db'}"),
        "LOG_FORMAT": "json",
        "FORWARDED_ALLOW_IPS": "*",
        "MCP_PUBLIC_URL": f"https://localhost:{https_port}/mcp",
    }
    with api_log.open("wb") as stderr:
        api, base_url = launch(cwd=root, env=env, stderr=stderr)
    authority = make_authority(root, "edge-ca")
    certificate, key = issue(authority, root, "localhost", server=True)
    ports = Edge(https_port, http_port, authority.path, api_log)
    site = root / "site.conf"
    site.write_text(
        render(
            TEMPLATE.read_text(),
            upstream=base_url.removeprefix("http://"),
            certificate=certificate,
            key=key,
            ports=ports,
        )
    )
    temp = root / "temp"
    temp.mkdir()
    temp.chmod(0o777)  # nginx's workers drop root to write temporary files here
    (root / "nginx.conf").write_text(
        f"worker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log info;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"  access_log {root}/access.log;\n"
        + "".join(
            f"  {kind}_temp_path {temp}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"  include {site};\n}}\n"
    )
    assert NGINX is not None
    nginx = subprocess.Popen(  # noqa: S603 - the machine's nginx with our configuration
        [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(ports, nginx, root)
        yield ports
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        api.terminate()
        api.wait(timeout=10)


def _wait_for(edge: Edge, nginx: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if nginx.poll() is not None:
            error_log = root / "error.log"
            raise RuntimeError(
                f"nginx exited: {error_log.read_text() if error_log.exists() else ''}"
            )
        try:
            with edge.client() as client:
                if client.get("/health/live").status_code == 200:
                    return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("nginx did not answer in time")


class TestThroughTheProxy:
    def test_requests_are_served_over_tls(self, edge: Edge) -> None:
        with edge.client() as client:
            created = client.post("/api/alice/tasks", json={"title": "through the edge"})
            listed = client.get("/api/alice/tasks")

        assert created.status_code == 201
        assert created.http_version == "HTTP/1.1"
        assert [task["title"] for task in listed.json()] == ["through the edge"]
        assert "nginx/" not in created.headers.get("server", "")  # no version given away

    def test_plain_http_is_sent_to_https(self, edge: Edge) -> None:
        response = httpx.get(f"http://127.0.0.1:{edge.http_port}/api/alice/tasks")

        assert response.status_code == 308
        assert response.headers["location"].startswith("https://")

    def test_the_api_sees_the_connecting_address_not_a_claimed_one(self, edge: Edge) -> None:
        with edge.client(local_address="127.0.0.2") as client:
            response = client.get("/api/carol/tasks", headers={"X-Forwarded-For": "203.0.113.9"})

        request_id = response.headers["x-request-id"]
        deadline = time.monotonic() + 5
        while not (found := [r for r in edge.access_records() if r["request_id"] == request_id]):
            assert time.monotonic() < deadline, "no access line for the request"
            time.sleep(0.05)
        assert found[0]["client"] == "127.0.0.2"

    def test_links_are_followed_through_the_edge(self, edge: Edge) -> None:
        with edge.client() as client:
            for title in ("one", "two"):
                client.post("/api/dave/tasks", json={"title": title})
            first = client.get("/api/dave/tasks", params={"limit": 1, "sort": "title"})
            # Relative: nothing in them comes from the Host header or the scheme.
            link = first.links["next"]["url"]
            second = client.get(link)

        assert link.startswith("/api/dave/tasks?")
        assert [task["title"] for task in first.json() + second.json()] == ["one", "two"]

    async def test_an_agent_reaches_mcp_through_the_edge(self, edge: Edge) -> None:
        context = ssl.create_default_context(cafile=edge.authority)
        async with mcp_client(f"{edge.url}/mcp", verify=context) as client:
            made = await client.call_tool("add_task", {"title": "via the edge"})
            listed = await client.call_tool("list_tasks", {})

        assert not made.is_error, made.content
        assert listed.structured_content is not None
        assert [task["title"] for task in listed.structured_content["tasks"]] == ["via the edge"]

    def test_mcp_refuses_a_host_it_is_not_published_at(self, edge: Edge) -> None:
        with edge.client() as client:
            response = client.post("/mcp", json={}, headers={"Host": "elsewhere.example"})

        assert response.status_code == 421


class TestEdgeLimits:
    def test_a_1_mb_header_is_refused(self, edge: Edge) -> None:
        with edge.raw() as sock:
            sock.sendall(b"GET /api/alice/tasks HTTP/1.1\r\nHost: localhost\r\nX-Padding: ")
            try:
                for _ in range(16):
                    sock.sendall(b"a" * 65536)
            except OSError:
                pass  # closed before the megabyte was all sent
            response = sock.recv(65536)

        assert status_of(response) in (400, 431)

    def test_a_body_over_the_api_limit_is_refused_at_the_edge(self, edge: Edge) -> None:
        with edge.client() as client:
            response = client.post(
                "/api/alice/tasks",
                content=b"{" + b" " * 70_000 + b"}",
                headers={"Content-Type": "application/json"},
            )

        assert response.status_code == 413

    def test_a_trickled_header_block_is_closed_at_the_deadline(self, edge: Edge) -> None:
        with edge.raw() as sock:
            sock.sendall(b"GET /api/alice/tasks HTTP/1.1\r\nHost: localhost\r\n")
            response, elapsed = trickle(sock, b"x", give_up_after=HEADER_TIMEOUT_S + 10)

        assert response == b"" or status_of(response) == 408
        assert HEADER_TIMEOUT_S - 1 <= elapsed <= HEADER_TIMEOUT_S + 5

    def test_a_flood_of_probes_is_cut_at_the_edge(self, edge: Edge) -> None:
        with edge.client(local_address="127.0.0.3") as client:
            started = time.monotonic()
            statuses = [client.get("/health").status_code for _ in range(40)]
            elapsed = time.monotonic() - started

        assert statuses[:10] == [200] * 10  # a burst is allowed
        # Then 5 a second: the rest are refused at the edge, never reaching the API.
        assert statuses.count(200) <= 11 + 5 * elapsed
        assert statuses.count(200) + statuses.count(503) == len(statuses)
        assert statuses.count(503) > 0
        with edge.client(local_address="127.0.0.4") as other:  # per address
            assert other.get("/health").status_code == 200

    def test_one_address_cannot_hold_more_than_its_share_of_requests(self, edge: Edge) -> None:
        held: list[ssl.SSLSocket] = []
        try:
            for _ in range(PER_CLIENT):  # each one a body that is still coming
                sock = edge.raw()
                sock.sendall(
                    b"POST /api/alice/tasks HTTP/1.1\r\nHost: localhost\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
                )
                held.append(sock)
            time.sleep(0.5)
            with edge.client() as client:
                refused = client.get("/api/alice/tasks")
        finally:
            for sock in held:
                sock.close()

        assert refused.status_code == 503
        with edge.client() as client:  # the share comes back as they go
            deadline = time.monotonic() + 5
            while (status := client.get("/api/alice/tasks").status_code) != 200:
                assert time.monotonic() < deadline, status
                time.sleep(0.1)
