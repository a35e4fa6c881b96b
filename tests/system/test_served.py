"""`todo-api serve` as deployed, a real process on a free local port: the headers it sends, the
log it writes, and metrics that add up across several worker processes."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.support.observability import access_lines, json_lines, sample, series_labels
from tests.support.processes import launch, serving
from tests.support.tokens import SECRET, bearer, hs256_token
from todo_api.errors import DB_RETRY_AFTER_SECONDS

# Made at import and used minutes later in a full run: valid for an hour, not five minutes.
TOKEN = hs256_token("alice", ttl=3600)
AUTH = bearer(TOKEN)
BODY_SECRET = "s3cr3t-PASSWORD-xyz"
LIST_ROUTE = "/api/{user_id}/tasks"


# --- headers (tests/api/test_hygiene.py checks them in process) -----------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`todo-api serve` for real (uvicorn, migrations, SQLite), on a free local port."""
    tmp_path: Path = tmp_path_factory.mktemp("served")
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'todo.db'}",
        "AUTH_JWT_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
    }
    with serving(cwd=tmp_path, env=env) as base_url:
        yield base_url


class TestServedHeaders:
    def test_the_real_server_sends_no_server_header(self, served: str) -> None:
        response = httpx.get(f"{served}/api/alice/tasks", headers=AUTH, timeout=5)

        assert response.status_code == 200
        assert response.json() == []
        assert "server" not in response.headers
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"

    def test_the_real_server_refuses_a_missing_token(self, served: str) -> None:
        response = httpx.get(f"{served}/api/alice/tasks", timeout=5)

        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="todo-api"'
        assert "server" not in response.headers

    def test_an_idle_connection_outlives_the_retry_after_of_a_fault(self, served: str) -> None:
        # A client told `Retry-After: 5` that waits it out may reuse its connection.
        host, port = served.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.request("GET", "/health/live")
            first = conn.getresponse()
            first.read()
            socket_used = conn.sock
            time.sleep(DB_RETRY_AFTER_SECONDS + 1)
            conn.request("GET", "/health/live")
            second = conn.getresponse()  # RemoteDisconnected if the server closed it meanwhile
            second.read()
            assert conn.sock is socket_used
        finally:
            conn.close()

        assert (first.status, second.status) == (200, 200)


# --- the log (tests/observability/test_logging.py checks it in process) ---------------------------


class TestServedLog:
    def test_a_real_server_writes_only_json_lines_and_no_secrets(self, tmp_path: Path) -> None:
        """`todo-api serve` as deployed: migrations, uvicorn and the app all log through the
        one JSON formatter, at DEBUG, and the token and body stay out."""
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'todo.db'}",
            "AUTH_JWT_SECRET": SECRET,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "DEBUG",
        }
        log_path = tmp_path / "server.log"
        with log_path.open("wb") as log:
            process, base_url = launch(cwd=tmp_path, env=env, stderr=log)
            try:
                created = httpx.post(
                    f"{base_url}/api/alice/tasks",
                    json={"title": BODY_SECRET},
                    headers={**bearer(TOKEN), "X-Request-ID": "trace-served-1"},
                    timeout=10,
                )
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)

        assert created.status_code == 201
        output = log_path.read_text()
        records = json_lines(output)
        loggers = {record["logger"] for record in records}
        assert {"todo_api.cli", "uvicorn.error", "todo_api.access"} <= loggers
        [line] = [r for r in access_lines(records) if r["request_id"] == "trace-served-1"]
        assert (line["route"], line["status"], line["user_id"]) == (
            "/api/{user_id}/tasks",
            201,
            "alice",
        )
        assert line["client"].startswith("127.0.0.1:")
        for secret in (TOKEN, BODY_SECRET, SECRET):
            assert secret not in output


# --- metrics from several worker processes --------------------------------------------------------

WORKERS = 2
BATCH = 24


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`todo-api serve --workers 2` on SQLite, with no PROMETHEUS_MULTIPROC_DIR of its own; yields
    its base URL and the temporary folder its metrics directory goes to."""
    root = tmp_path_factory.mktemp("workers")
    temp = root / "tmp"
    temp.mkdir()
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "DATABASE_URL": f"sqlite+aiosqlite:///{root / 'todo.db'}",
        "METRICS_ENABLED": "true",
        "RATE_LIMIT": "0",
        "LOG_LEVEL": "WARNING",
        "TMPDIR": str(temp),
    }
    process, base_url = launch(cwd=root, env=env, args=["--workers", str(WORKERS)])
    try:
        yield base_url, temp
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    # The server removes the directory it made once it has stopped.
    assert list(temp.glob("todo-api-metrics-*")) == []


def metrics_directory(temp: Path) -> Path:
    [directory] = temp.glob("todo-api-metrics-*")
    return directory


def served_by_each_worker(directory: Path, route: str) -> dict[str, float]:
    """Requests to `route` each worker process has counted, read from its own file."""
    counts: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        families = MultiProcessCollector.merge([str(path)], accumulate=False)  # type: ignore[no-untyped-call]
        counts[path.stem] = sum(
            found.value
            for family in families
            if family.name == "todo_api_http_requests"
            for found in family.samples
            if found.labels.get("route") == route
        )
    return counts


def wait_for_workers(directory: Path) -> None:
    """Each worker writes its counter file when it builds its app."""
    deadline = time.monotonic() + 30
    while len(list(directory.glob("counter_*.db"))) < WORKERS:
        assert time.monotonic() < deadline, "the workers did not all start"
        time.sleep(0.05)


async def send_batch(base_url: str, n: int) -> None:
    """`n` requests at once, each on a connection of its own, so the workers share them."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits) as http:
        responses = await asyncio.gather(*(http.get("/api/alice/tasks") for _ in range(n)))
    assert {response.status_code for response in responses} == {200}


class TestSeveralWorkers:
    async def test_metrics_add_up_every_workers_requests(
        self, two_workers: tuple[str, Path]
    ) -> None:
        base_url, temp = two_workers
        directory = metrics_directory(temp)
        wait_for_workers(directory)

        sent = 0
        for _ in range(10):  # until both workers have served some
            await send_batch(base_url, BATCH)
            sent += BATCH
            per_worker = served_by_each_worker(directory, LIST_ROUTE)
            if len(per_worker) == WORKERS and all(per_worker.values()):
                break
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            text = (await http.get("/metrics")).text

        assert len(per_worker) == WORKERS
        assert all(per_worker.values()), per_worker
        assert sum(per_worker.values()) == sent
        labels = {"method": "GET", "route": LIST_ROUTE, "status": "2xx"}
        assert sample(text, "todo_api_http_requests_total", **labels) == sent
        assert sample(text, "todo_api_http_request_duration_seconds_count", **labels) == sent
        # One in-flight series for the whole server (summed over the live workers), now idle.
        assert series_labels(text, "todo_api_http_requests_in_flight") == [{}]
        assert sample(text, "todo_api_http_requests_in_flight") == 0
